//! In-memory image datasets: the one type every image reader produces and every imaging
//! model, corruption and partitioner consumes.
//!
//! Pixels are `f32` in `[0, 1]`, laid out sample-major, then channel, depth, height, width
//! (`N x C x D x H x W`, row-major; `D = 1` for 2D images), so a batch slice is contiguous
//! and maps onto a Burn tensor of shape `[N, C, H, W]` (or `[N, C, D, H, W]`) without a
//! copy. Readers of 8-bit formats divide by 255; DICOM and NIfTI readers map their window
//! or intensity range onto `[0, 1]`.

use serde::{Deserialize, Serialize};

/// What the labels of an image dataset mean. The experiment states it; readers never guess
/// it from array shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ImageTask {
    /// One label per image in `0..classes` (cross-entropy).
    MultiClass {
        /// Number of classes.
        classes: usize,
    },
    /// One label per image, 0 or 1 (two-class cross-entropy; AUC is reported).
    Binary,
    /// `labels` independent 0/1 labels per image (binary cross-entropy on each).
    MultiLabel {
        /// Number of labels per image.
        labels: usize,
    },
}

impl ImageTask {
    /// Number of label values stored per image: 1, or the number of labels for
    /// multi-label tasks.
    pub fn label_width(&self) -> usize {
        match self {
            Self::MultiClass { .. } | Self::Binary => 1,
            Self::MultiLabel { labels } => *labels,
        }
    }

    /// Number of model outputs: classes for multi-class, 2 for binary, one per label for
    /// multi-label.
    pub fn outputs(&self) -> usize {
        match self {
            Self::MultiClass { classes } => *classes,
            Self::Binary => 2,
            Self::MultiLabel { labels } => *labels,
        }
    }

    /// Largest valid label value + 1 for one stored label (classes, 2, or 2 for 0/1 bits).
    pub fn label_bound(&self) -> u32 {
        match self {
            Self::MultiClass { classes } => u32::try_from(*classes).unwrap_or(u32::MAX),
            Self::Binary | Self::MultiLabel { .. } => 2,
        }
    }
}

/// Shape of one image: channels, depth (1 for 2D), height, width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Channels (1 for grey-scale, 3 for RGB).
    pub channels: usize,
    /// Slices (1 for a 2D image).
    pub depth: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// A 2D image shape.
    pub fn d2(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            depth: 1,
            height,
            width,
        }
    }

    /// A 3D volume shape.
    pub fn d3(channels: usize, depth: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            depth,
            height,
            width,
        }
    }

    /// Whether this is a volume (`depth > 1`).
    pub fn is_3d(&self) -> bool {
        self.depth > 1
    }

    /// Values per image: `C x D x H x W`.
    pub fn len(&self) -> usize {
        self.channels * self.depth * self.height * self.width
    }

    /// Whether an image of this shape holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_3d() {
            write!(
                f,
                "{}x{}x{}x{}",
                self.channels, self.depth, self.height, self.width
            )
        } else {
            write!(f, "{}x{}x{}", self.channels, self.height, self.width)
        }
    }
}

/// A set of labelled images of one shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageSet {
    /// Shape of every image.
    pub shape: ImageShape,
    /// What the labels mean.
    pub task: ImageTask,
    /// `len() x shape.len()` pixel values in `[0, 1]`, sample-major (`N x C x D x H x W`).
    pub pixels: Vec<f32>,
    /// `len() x task.label_width()` labels: class indices, or 0/1 per label.
    pub labels: Vec<u32>,
    /// Where each image came from (file name, or `file.npz:train[17]`), for error
    /// messages and reports; empty or one per image.
    pub sources: Vec<String>,
}

impl ImageSet {
    /// An empty set of the given shape and task.
    pub fn empty(shape: ImageShape, task: ImageTask) -> Self {
        Self {
            shape,
            task,
            pixels: Vec::new(),
            labels: Vec::new(),
            sources: Vec::new(),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len() / self.task.label_width().max(1)
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.shape.len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Labels of image `i` (one value, or one per label).
    pub fn label(&self, i: usize) -> &[u32] {
        let w = self.task.label_width();
        &self.labels[i * w..(i + 1) * w]
    }

    /// Appends one image with its labels and source.
    ///
    /// # Panics
    /// If `pixels` or `labels` has the wrong length (a reader bug, not bad input: readers
    /// check files before pushing).
    pub fn push(&mut self, pixels: &[f32], labels: &[u32], source: impl Into<String>) {
        assert_eq!(pixels.len(), self.shape.len(), "image of the wrong size");
        assert_eq!(
            labels.len(),
            self.task.label_width(),
            "wrong number of labels"
        );
        self.pixels.extend_from_slice(pixels);
        self.labels.extend_from_slice(labels);
        self.sources.push(source.into());
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Self {
        let n = self.shape.len();
        let w = self.task.label_width();
        let mut out = Self::empty(self.shape, self.task);
        out.pixels.reserve(indices.len() * n);
        out.labels.reserve(indices.len() * w);
        for &i in indices {
            out.pixels.extend_from_slice(self.image(i));
            out.labels.extend_from_slice(self.label(i));
            if let Some(s) = self.sources.get(i) {
                out.sources.push(s.clone());
            }
        }
        if out.sources.len() != out.len() {
            out.sources.clear();
        }
        out
    }

    /// Appends every image of `other` (same shape and task).
    ///
    /// # Errors
    /// A message naming both shapes or tasks when they differ.
    pub fn extend(&mut self, other: &Self) -> Result<(), String> {
        if self.shape != other.shape {
            return Err(format!(
                "image shapes differ: {} vs {}",
                self.shape, other.shape
            ));
        }
        if self.task != other.task {
            return Err(format!("tasks differ: {:?} vs {:?}", self.task, other.task));
        }
        let keep_sources = self.sources.len() == self.len() && other.sources.len() == other.len();
        self.pixels.extend_from_slice(&other.pixels);
        self.labels.extend_from_slice(&other.labels);
        if keep_sources {
            self.sources.extend(other.sources.iter().cloned());
        } else {
            self.sources.clear();
        }
        Ok(())
    }

    /// Number of images per class (multi-class/binary) or per positive label
    /// (multi-label).
    pub fn label_counts(&self) -> Vec<usize> {
        match self.task {
            ImageTask::MultiLabel { labels } => {
                let mut c = vec![0; labels];
                for row in self.labels.chunks(labels) {
                    for (k, &v) in row.iter().enumerate() {
                        c[k] += usize::from(v != 0);
                    }
                }
                c
            }
            _ => {
                let mut c = vec![0; self.task.outputs()];
                for &l in &self.labels {
                    if let Some(slot) = c.get_mut(l as usize) {
                        *slot += 1;
                    }
                }
                c
            }
        }
    }
}

/// One site's images: training, validation (possibly empty) and test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageSite {
    /// Site name.
    pub name: String,
    /// Training images.
    pub train: ImageSet,
    /// Validation images (may be empty).
    pub val: ImageSet,
    /// Test images.
    pub test: ImageSet,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_and_counts() {
        let mut s = ImageSet::empty(
            ImageShape::d2(1, 1, 2),
            ImageTask::MultiClass { classes: 3 },
        );
        s.push(&[0.0, 0.1], &[2], "a");
        s.push(&[0.2, 0.3], &[0], "b");
        s.push(&[0.4, 0.5], &[2], "c");
        assert_eq!(s.len(), 3);
        assert_eq!(s.label_counts(), vec![1, 0, 2]);
        let t = s.select(&[2, 0]);
        assert_eq!(t.pixels, vec![0.4, 0.5, 0.0, 0.1]);
        assert_eq!(t.labels, vec![2, 2]);
        assert_eq!(t.sources, vec!["c", "a"]);
    }

    #[test]
    fn multi_label_counts_and_extend_checks_shape() {
        let mut s = ImageSet::empty(ImageShape::d2(1, 1, 1), ImageTask::MultiLabel { labels: 3 });
        s.push(&[0.5], &[1, 0, 1], "a");
        s.push(&[0.5], &[1, 1, 0], "b");
        assert_eq!(s.len(), 2);
        assert_eq!(s.label_counts(), vec![2, 1, 1]);
        let other = ImageSet::empty(ImageShape::d2(1, 2, 1), ImageTask::MultiLabel { labels: 3 });
        assert!(s.extend(&other).unwrap_err().contains("1x1x1 vs 1x2x1"));
    }
}
