//! Seeded synthetic multi-site imaging with per-site acquisition profiles (in progress).
