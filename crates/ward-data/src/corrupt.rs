//! Acquisition-shift corruptions at graded severities (in progress).
