//! Reload: the classifier in service is shared by every request and replaced atomically when
//! the library changes. A reload reads the library and builds the new classifier off to the
//! side; on error the old one stays.

use std::sync::Arc;

use serde::Serialize;

use super::{Classifier, ClassifierError, Thresholds};

/// The classifier in service: read without locking by every request, replaced atomically by
/// a reload. A reload builds the new classifier off to the side; requests keep using the old
/// one until the swap, so none waits and none fails.
pub struct SharedClassifier {
    current: arc_swap::ArcSwap<Classifier>,
    dir: std::path::PathBuf,
    thresholds: Thresholds,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Library(#[from] crate::library::LibraryError),
    #[error(transparent)]
    Index(#[from] ClassifierError),
}

/// What a (re)load produced.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub replies: usize,
    pub questions: usize,
    pub build_ms: u64,
}

impl SharedClassifier {
    /// Load the library in `dir` and build the first classifier.
    pub fn load(
        dir: &std::path::Path,
        thresholds: Thresholds,
    ) -> Result<(Self, LoadReport), ReloadError> {
        let (classifier, report) = Self::build_from(dir, thresholds)?;
        Ok((
            SharedClassifier {
                current: arc_swap::ArcSwap::from_pointee(classifier),
                dir: dir.to_owned(),
                thresholds,
            },
            report,
        ))
    }

    fn build_from(
        dir: &std::path::Path,
        thresholds: Thresholds,
    ) -> Result<(Classifier, LoadReport), ReloadError> {
        let started = std::time::Instant::now();
        let library = crate::library::load(dir)?;
        let replies = library.replies().len();
        let questions = library.replies().iter().map(|r| r.questions.len()).sum();
        let classifier = Classifier::build(library, thresholds)?;
        Ok((
            classifier,
            LoadReport {
                replies,
                questions,
                build_ms: started.elapsed().as_millis() as u64,
            },
        ))
    }

    /// The classifier to use for one request.
    pub fn current(&self) -> Arc<Classifier> {
        self.current.load_full()
    }

    /// Re-read the library and swap in a new classifier. On error the old one stays.
    pub fn reload(&self) -> Result<LoadReport, ReloadError> {
        let (classifier, report) = Self::build_from(&self.dir, self.thresholds)?;
        self.current.store(Arc::new(classifier));
        Ok(report)
    }
}
