//! Folders of PNG/JPEG images: `root/<class>/<image>` or `root/<site>/<class>/<image>`.
//!
//! Class names, sorted, give the class indices (`0..classes`); with sites, the classes
//! are the sorted union over all sites, so an index means the same class everywhere.
//! Images are decoded one at a time (format from the file's content), converted to grey
//! or RGB, and resized with the `image` crate's bilinear filter (`Triangle`).

use std::path::Path;

use image::imageops::{self, FilterType};

use super::{BadFile, Loaded, Triage, list_dir};
use crate::error::DataError;
use crate::image::{ImageSet, ImageShape, ImageTask};

/// Colour of the images produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    /// One channel (colour images converted with the `image` crate's luma weights,
    /// ITU-R BT.709).
    Grey,
    /// Three channels, R, G, B (grey images repeated; alpha dropped).
    Rgb,
}

/// Settings of [`read_class_folders`] and [`read_site_folders`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderOptions {
    /// Grey or RGB output.
    pub color: Color,
    /// Output rows.
    pub height: u32,
    /// Output columns.
    pub width: u32,
    /// Skip (and report) or fail on a file that is not a readable PNG/JPEG.
    pub bad_file: BadFile,
}

/// Images of one folder tree with their class names.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassFolders {
    /// Class names (folder names), sorted; index = class label.
    pub classes: Vec<String>,
    /// The images, labelled ([`ImageTask::MultiClass`] with `classes.len()` classes).
    pub images: ImageSet,
}

/// Images of several sites sharing one class list.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteFolders {
    /// Class names (union over the sites), sorted; index = class label.
    pub classes: Vec<String>,
    /// `(site name, images)`, sites sorted by folder name.
    pub sites: Vec<(String, ImageSet)>,
}

/// Decodes and resizes one image.
///
/// # Shapes
/// The result: `C x height x width` (channels first).
fn read_image(path: &Path, options: &FolderOptions) -> Result<Vec<f32>, DataError> {
    let bad = |m: String| DataError::file(path, m);
    let reader = image::ImageReader::open(path)
        .map_err(|e| bad(format!("cannot open: {e}")))?
        .with_guessed_format()
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        Some(other) => {
            return Err(bad(format!(
                "is a {other:?} image; Ward reads PNG and JPEG"
            )));
        }
        None => return Err(bad("is not a PNG or JPEG image".into())),
    }
    let img = reader
        .decode()
        .map_err(|e| bad(format!("corrupt or truncated image: {e}")))?;
    let (w, h) = (options.width, options.height);
    Ok(match options.color {
        Color::Grey => {
            let grey = img.to_luma32f();
            let grey = if grey.dimensions() == (w, h) {
                grey
            } else {
                imageops::resize(&grey, w, h, FilterType::Triangle)
            };
            grey.into_raw()
                .into_iter()
                .map(|v| v.clamp(0.0, 1.0))
                .collect()
        }
        Color::Rgb => {
            let rgb = img.to_rgb32f();
            let rgb = if rgb.dimensions() == (w, h) {
                rgb
            } else {
                imageops::resize(&rgb, w, h, FilterType::Triangle)
            };
            let plane = (w * h) as usize;
            let raw = rgb.into_raw();
            let mut out = vec![0.0f32; 3 * plane];
            for (p, px) in raw.chunks_exact(3).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    out[c * plane + p] = v.clamp(0.0, 1.0);
                }
            }
            out
        }
    })
}

/// Sub-folders of `dir` by name (sorted); a plain file there is a bad file.
fn sub_folders(dir: &Path, triage: &mut Triage, what: &str) -> Result<Vec<String>, DataError> {
    let mut names = Vec::new();
    for p in list_dir(dir)? {
        if p.is_dir() {
            names.push(
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        } else {
            let e = DataError::file(
                &p,
                format!(
                    "is a file where {what} folders are expected ({}/<{what}>/...)",
                    dir.display()
                ),
            );
            triage.check::<()>(&p, Err(e))?;
        }
    }
    Ok(names)
}

fn check_options(options: &FolderOptions) -> Result<(), DataError> {
    if options.height == 0 || options.width == 0 {
        return Err(DataError::spec(
            "image size",
            format!(
                "must be at least 1 x 1, got {} x {}",
                options.height, options.width
            ),
        ));
    }
    Ok(())
}

fn empty_set(options: &FolderOptions, classes: usize) -> ImageSet {
    let c = match options.color {
        Color::Grey => 1,
        Color::Rgb => 3,
    };
    ImageSet::empty(
        ImageShape::d2(c, options.height as usize, options.width as usize),
        ImageTask::MultiClass { classes },
    )
}

/// Reads every image under `dir/<class>/` for the given classes into `out`.
fn read_classes(
    dir: &Path,
    classes: &[String],
    options: &FolderOptions,
    triage: &mut Triage,
    out: &mut ImageSet,
) -> Result<(), DataError> {
    for (label, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        if !class_dir.is_dir() {
            continue;
        }
        for file in list_dir(&class_dir)? {
            let read = if file.is_dir() {
                Err(DataError::file(
                    &file,
                    "is a folder inside a class folder (expected image files)",
                ))
            } else {
                read_image(&file, options)
            };
            if let Some(px) = triage.check(&file, read)? {
                out.push(&px, &[label as u32], file.display().to_string());
            }
        }
    }
    Ok(())
}

fn need_classes(root: &Path, classes: &[String]) -> Result<(), DataError> {
    if classes.len() < 2 {
        return Err(DataError::file(
            root,
            format!(
                "found {} class folder(s) {classes:?}; a classification needs at least 2",
                classes.len()
            ),
        ));
    }
    Ok(())
}

/// Reads `root/<class>/<image>` (PNG or JPEG), labels from the sorted class folder names.
///
/// # Shapes
/// `N x C x 1 x height x width`, `C` = 1 (grey) or 3 (RGB); images in class order, then
/// file-name order.
///
/// # Errors
/// [`DataError::Io`] when `root` cannot be listed; [`DataError::File`] when fewer than
/// two class folders exist; under [`BadFile::Fail`] the first undecodable or non-image
/// file (naming it and the reason); under [`BadFile::Skip`] those are listed in
/// [`Loaded::skipped`].
pub fn read_class_folders(
    root: &Path,
    options: &FolderOptions,
) -> Result<Loaded<ClassFolders>, DataError> {
    check_options(options)?;
    let mut triage = Triage::new(options.bad_file);
    let classes = sub_folders(root, &mut triage, "class")?;
    need_classes(root, &classes)?;
    let mut images = empty_set(options, classes.len());
    read_classes(root, &classes, options, &mut triage, &mut images)?;
    Ok(triage.finish(ClassFolders { classes, images }))
}

/// Reads `root/<site>/<class>/<image>`: one [`ImageSet`] per site, with one class list
/// (sorted union of all sites' class folders), so labels agree across sites.
///
/// # Shapes
/// Each site: `N x C x 1 x height x width`, `C` = 1 (grey) or 3 (RGB).
///
/// # Errors
/// As [`read_class_folders`].
pub fn read_site_folders(
    root: &Path,
    options: &FolderOptions,
) -> Result<Loaded<SiteFolders>, DataError> {
    check_options(options)?;
    let mut triage = Triage::new(options.bad_file);
    let sites = sub_folders(root, &mut triage, "site")?;
    if sites.is_empty() {
        return Err(DataError::file(root, "holds no site folder"));
    }
    let mut classes = Vec::new();
    for site in &sites {
        classes.extend(sub_folders(&root.join(site), &mut triage, "class")?);
    }
    classes.sort();
    classes.dedup();
    need_classes(root, &classes)?;
    let mut out = Vec::with_capacity(sites.len());
    for site in sites {
        let mut images = empty_set(options, classes.len());
        read_classes(
            &root.join(&site),
            &classes,
            options,
            &mut triage,
            &mut images,
        )?;
        out.push((site, images));
    }
    Ok(triage.finish(SiteFolders {
        classes,
        sites: out,
    }))
}
