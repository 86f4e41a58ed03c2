//! A policy overrides file that is re-read when it changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use crate::policy::{LoadError, Policy};

/// What `stat` says about the file; a change in any field means "reload".
#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    /// No file: the defaults apply.
    Missing,
    /// The file exists.
    Present {
        modified: Option<SystemTime>,
        len: u64,
        #[cfg(unix)]
        inode: (u64, u64),
    },
    /// `stat` failed for another reason (kind and message).
    Unreadable(std::io::ErrorKind, String),
}

fn probe(path: &Path) -> Probe {
    match std::fs::metadata(path) {
        Ok(m) => Probe::Present {
            modified: m.modified().ok(),
            len: m.len(),
            #[cfg(unix)]
            inode: {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            },
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Probe::Missing,
        Err(e) => Probe::Unreadable(e.kind(), e.to_string()),
    }
}

#[derive(Debug)]
struct State {
    probe: Probe,
    policy: Arc<Policy>,
    last_error: Option<Arc<LoadError>>,
}

/// Outcome of [`PolicyFile::refresh`].
#[derive(Debug, Clone)]
pub enum Refresh {
    /// The file did not change (or no file is configured).
    Unchanged(Arc<Policy>),
    /// The file changed and was loaded (a deleted file means the defaults).
    /// Log the new policy's [`Policy::diagnostics`].
    Reloaded(Arc<Policy>),
    /// The file changed but could not be loaded; the previous policy stays
    /// in force until the file changes again.
    Failed {
        /// Why loading failed.
        error: Arc<LoadError>,
        /// The policy still in force.
        policy: Arc<Policy>,
    },
}

impl Refresh {
    /// The policy in force after the refresh.
    pub fn policy(&self) -> &Arc<Policy> {
        match self {
            Self::Unchanged(p) | Self::Reloaded(p) | Self::Failed { policy: p, .. } => p,
        }
    }

    /// The policy in force after the refresh.
    pub fn into_policy(self) -> Arc<Policy> {
        match self {
            Self::Unchanged(p) | Self::Reloaded(p) | Self::Failed { policy: p, .. } => p,
        }
    }
}

/// The policy from an optional `policy.yaml`, cached by the file's
/// modification time, size and inode: [`PolicyFile::current`] costs one
/// `stat` per call and re-reads the file only when one of those changed.
///
/// Semantics: no path or a missing file means the defaults; a file that
/// fails to load keeps the previous policy (and is not retried until it
/// changes again). Edits that keep size and mtime identical (possible on
/// filesystems with coarse timestamps) go unnoticed until the next change;
/// [`PolicyFile::reload`] forces a re-read.
#[derive(Debug)]
pub struct PolicyFile {
    path: Option<PathBuf>,
    state: RwLock<State>,
}

impl PolicyFile {
    /// Loads the policy; a file that exists but cannot be loaded is an error
    /// (fail at startup rather than run with unintended rules).
    pub fn new(path: Option<PathBuf>) -> Result<Self, LoadError> {
        let probe = path.as_deref().map_or(Probe::Missing, probe);
        let policy = Policy::load(path.as_deref())?;
        Ok(Self {
            path,
            state: RwLock::new(State {
                probe,
                policy: Arc::new(policy),
                last_error: None,
            }),
        })
    }

    /// Zun's defaults, with no file.
    pub fn defaults() -> Self {
        Self {
            path: None,
            state: RwLock::new(State {
                probe: Probe::Missing,
                policy: Arc::new(Policy::from_defaults()),
                last_error: None,
            }),
        }
    }

    /// The configured file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The policy in force, reloading first if the file changed.
    pub fn current(&self) -> Arc<Policy> {
        self.refresh().into_policy()
    }

    /// Checks the file and reloads it if it changed, saying what happened
    /// (so the caller can log reloads and failures once).
    pub fn refresh(&self) -> Refresh {
        let Some(path) = &self.path else {
            return Refresh::Unchanged(Arc::clone(&self.read().policy));
        };
        let now = probe(path);
        {
            let state = self.read();
            if state.probe == now {
                return Refresh::Unchanged(Arc::clone(&state.policy));
            }
        }
        let mut state = self.write();
        if state.probe == now {
            // Another caller reloaded in between.
            return Refresh::Unchanged(Arc::clone(&state.policy));
        }
        let loaded = match &now {
            Probe::Unreadable(kind, message) => Err(LoadError::Io {
                path: path.clone(),
                source: std::io::Error::new(*kind, message.clone()),
            }),
            Probe::Missing | Probe::Present { .. } => Policy::load(Some(path)),
        };
        state.probe = now;
        Self::apply(&mut state, loaded)
    }

    /// Re-reads the file unconditionally.
    pub fn reload(&self) -> Refresh {
        let mut state = self.write();
        let Some(path) = &self.path else {
            return Refresh::Unchanged(Arc::clone(&state.policy));
        };
        state.probe = probe(path);
        let loaded = Policy::load(Some(path));
        Self::apply(&mut state, loaded)
    }

    fn apply(state: &mut State, loaded: Result<Policy, LoadError>) -> Refresh {
        match loaded {
            Ok(policy) => {
                state.policy = Arc::new(policy);
                state.last_error = None;
                Refresh::Reloaded(Arc::clone(&state.policy))
            }
            Err(error) => {
                let error = Arc::new(error);
                state.last_error = Some(Arc::clone(&error));
                Refresh::Failed {
                    error,
                    policy: Arc::clone(&state.policy),
                }
            }
        }
    }

    /// The error of the last failed load, cleared by a successful one.
    pub fn last_error(&self) -> Option<Arc<LoadError>> {
        self.read().last_error.clone()
    }
}
