//! MedMNIST `.npz` files (`train_images`, `train_labels`, `val_*`, `test_*`), one site per
//! file. The array checks live in [`crate::npz`]; this module names sites and applies the
//! [`BadFile`] policy over many files.

use std::path::{Path, PathBuf};

use super::{BadFile, Dims, Loaded, Triage};
use crate::error::DataError;
use crate::image::{ImageSite, ImageTask};

fn site_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "medmnist".into(), |s| s.to_string_lossy().into_owned())
}

/// Reads one MedMNIST `.npz` file as a site named after the file stem.
///
/// Images are uint8 `(N, H, W)` or `(N, H, W, 3)` for [`Dims::D2`], `(N, D, H, W)` for
/// [`Dims::D3`] (divided by 255); labels `(N, 1)` class indices, or `(N, L)` 0/1 for
/// [`ImageTask::MultiLabel`]. A missing `val` split gives an empty `val` set.
///
/// # Shapes
/// Each split's pixels: `N x C x D x H x W` (`D = 1` for 2D).
///
/// # Errors
/// [`DataError::File`] naming the file and array: not a zip archive, truncated data,
/// missing arrays, shapes that disagree with `task` or `dims` (quoting the shape), a
/// label out of range (naming the image index).
pub fn read_medmnist(path: &Path, task: ImageTask, dims: Dims) -> Result<ImageSite, DataError> {
    let s = crate::npz::read_medmnist(path, task, dims == Dims::D3)?;
    Ok(ImageSite {
        name: site_name(path),
        train: s.train,
        val: s.val,
        test: s.test,
    })
}

/// Reads several MedMNIST `.npz` files, one site each, in the given order.
///
/// # Errors
/// Under [`BadFile::Fail`], the first file's error (see [`read_medmnist`]); under
/// [`BadFile::Skip`] bad files are listed in [`Loaded::skipped`]. Files whose image
/// shapes differ from the first good file's are bad files too.
pub fn read_medmnist_sites(
    paths: &[PathBuf],
    task: ImageTask,
    dims: Dims,
    bad_file: BadFile,
) -> Result<Loaded<Vec<ImageSite>>, DataError> {
    let mut triage = Triage::new(bad_file);
    let mut sites: Vec<ImageSite> = Vec::new();
    for path in paths {
        let read = read_medmnist(path, task, dims).and_then(|site| match sites.first() {
            Some(first) if first.train.shape != site.train.shape => Err(DataError::file(
                path,
                format!(
                    "images are {}, but {} has {}",
                    site.train.shape, first.name, first.train.shape
                ),
            )),
            _ => Ok(site),
        });
        if let Some(site) = triage.check(path, read)? {
            sites.push(site);
        }
    }
    Ok(triage.finish(sites))
}
