//! Image readers: MedMNIST `.npz`, image folders, NIfTI and DICOM (in progress).
