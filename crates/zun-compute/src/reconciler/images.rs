//! Images on the agent's host: what a create needs before the engine can
//! make the container (pull policy, registry credentials, a bounded pull
//! whose progress shows in the container's `status_reason`), and the pulls
//! and deletes asked for through `/v1/images`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use zun_store::{RegistryListQuery, SortDir, StoreError};
use zun_types::image::{Image, ImageRef, ImageTask, Registry, resolve_image};
use zun_types::{Container, TaskState};

use super::{Agent, WorkError, ignore_rejection};
use crate::runtime::{PullError, PullPolicy, RegistryAuth, RuntimeError};

/// How often a pull's progress is written to the container's record.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// The container's pull policy; upstream's default is `always`, whatever
/// the tag.
pub fn pull_policy(container: &Container) -> PullPolicy {
    match container.image_pull_policy.as_deref() {
        Some("never") => PullPolicy::Never,
        Some("ifnotpresent") => PullPolicy::IfNotPresent,
        _ => PullPolicy::Always,
    }
}

/// Whether `policy` asks for a pull when the image is (or is not) present.
pub fn needs_pull(policy: PullPolicy, present: bool) -> bool {
    match policy {
        PullPolicy::Always => true,
        PullPolicy::IfNotPresent => !present,
        PullPolicy::Never => false,
    }
}

/// Whether a failed `always` pull may fall back on the local copy. Only when
/// the registry could not be reached at all (an offline host keeps running
/// what it has), and never for a container that brings credentials: a
/// refused or unknown image must not be served from a copy another tenant
/// pulled with their own credentials.
pub fn may_use_local_copy(error: &PullError, present: bool, has_credentials: bool) -> bool {
    present && !has_credentials && matches!(error, PullError::Unreachable(_))
}

/// The `status_reason` of a failed pull: what happened and what to do.
fn pull_failure_reason(image: &str, error: &PullError, registry: Option<&Registry>) -> String {
    let named = |r: &Registry| match &r.name {
        Some(name) => format!("registry {name} ({})", r.uuid),
        None => format!("registry {}", r.uuid),
    };
    match (error, registry) {
        (PullError::Denied(m), Some(r)) => format!(
            "Failed to pull image {image}: {} refused the credentials of {}; check its username and password ({m})",
            r.domain,
            named(r)
        ),
        (PullError::Denied(m), None) => format!(
            "Failed to pull image {image}: the registry requires credentials; create a registry with them and create the container with --registry ({m})"
        ),
        (PullError::NotFound(m), _) => {
            format!("Failed to pull image {image}: the registry has no such image or tag ({m})")
        }
        (PullError::Unreachable(m), _) => {
            format!("Failed to pull image {image}: the registry could not be reached ({m})")
        }
        (PullError::Failed(m), _) => format!("Failed to pull image {image}: {m}"),
        (PullError::Engine(e), _) => format!("Failed to pull image {image}: {e}"),
    }
}

impl Agent {
    /// Makes the container's image available as its pull policy says, and
    /// returns the reference the engine creates it from (the image resolved
    /// against its registry's domain).
    pub(super) async fn prepare_image(&self, container: &Container) -> Result<String, WorkError> {
        let registry = self.registry_of(container).await?;
        let image = resolve_image(
            &container.image,
            registry.as_ref().map(|r| r.domain.as_str()),
        );
        let auth = match &registry {
            Some(r) => self.credentials(r)?,
            None => None,
        };
        let policy = pull_policy(container);
        let present = self
            .retrying(|| self.runtime.image(&image))
            .await?
            .is_some();
        if !needs_pull(policy, present) {
            return if present {
                Ok(image)
            } else {
                Err(RuntimeError::NotFound(format!(
                    "Image {image} could not be found on this host, and its pull policy is never."
                ))
                .into())
            };
        }
        let began = std::time::Instant::now();
        let result = self.pull_reporting(container, &image, auth.as_ref()).await;
        tracing::debug!(uuid = %container.uuid, %image, pull_ms = began.elapsed().as_millis(), "pull finished");
        match result {
            Ok(()) => Ok(image),
            Err(PullWait::TimedOut) => Err(WorkError::TimedOut(format!(
                "Pulling image {image} did not finish within {} s",
                self.config.pull_timeout.as_secs()
            ))),
            Err(PullWait::Failed(PullError::Engine(e))) => Err(e.into()),
            Err(PullWait::Failed(error)) if may_use_local_copy(&error, present, auth.is_some()) => {
                tracing::warn!(%image, %error, "registry unreachable; using the local copy of the image");
                Ok(image)
            }
            Err(PullWait::Failed(error)) => {
                Err(
                    RuntimeError::Rejected(pull_failure_reason(&image, &error, registry.as_ref()))
                        .into(),
                )
            }
        }
    }

    /// The registry the container names, if any.
    async fn registry_of(&self, container: &Container) -> Result<Option<Registry>, WorkError> {
        let Some(id) = &container.registry_id else {
            return Ok(None);
        };
        match self.store.get_registry(id).await? {
            Some(registry) => Ok(Some(registry)),
            None => {
                Err(RuntimeError::Rejected(format!("Registry {id} could not be found.")).into())
            }
        }
    }

    /// The registry's credentials, its password opened with this host's key.
    fn credentials(&self, registry: &Registry) -> Result<Option<RegistryAuth>, WorkError> {
        let (Some(username), Some(sealed)) = (&registry.username, &registry.password_sealed) else {
            return Ok(None);
        };
        let Some(key) = &self.config.secrets else {
            return Err(RuntimeError::Rejected(format!(
                "This host has no secret key to open the password of registry {}; give it the service's key file ([registry] key_file)",
                registry.uuid
            ))
            .into());
        };
        let password = key.open(sealed, &registry.uuid).map_err(|e| {
            RuntimeError::Rejected(format!(
                "The password of registry {} cannot be opened on this host: {e}; is [registry] key_file the same key as the API's?",
                registry.uuid
            ))
        })?;
        Ok(Some(RegistryAuth {
            server: registry.domain.clone(),
            username: username.clone(),
            password,
        }))
    }

    /// Pulls within the pull timeout, showing progress in the container's
    /// `status_reason` (task state `image_pulling`) while it runs.
    async fn pull_reporting(
        &self,
        container: &Container,
        image: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<(), PullWait> {
        self.show_pull(&container.uuid, format!("Pulling image {image}"))
            .await;
        let (progress_tx, mut progress_rx) = watch::channel(String::new());
        let progress = move |summary: String| {
            progress_tx.send_replace(summary);
        };
        let pull = tokio::time::timeout(
            self.config.pull_timeout,
            self.runtime.pull(image, auth, &progress),
        );
        let report = async {
            while progress_rx.changed().await.is_ok() {
                let summary = progress_rx.borrow_and_update().clone();
                self.show_pull(&container.uuid, format!("Pulling image {image}: {summary}"))
                    .await;
                tokio::time::sleep(PROGRESS_INTERVAL).await;
            }
            // The sender is gone only once the pull is over.
            std::future::pending::<()>().await;
        };
        tokio::select! {
            result = pull => match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(PullWait::Failed(error)),
                Err(_) => Err(PullWait::TimedOut),
            },
            () = report => Ok(()),
        }
    }

    async fn show_pull(&self, uuid: &str, reason: String) {
        let mutate = move |c: &mut Container| {
            c.task_state = Some(TaskState::ImagePulling);
            c.status_reason = Some(reason.clone());
            Ok(())
        };
        if let Err(err) = ignore_rejection(self.store.update_container(uuid, &mutate, None).await) {
            tracing::debug!(%uuid, error = %err, "recording pull progress failed");
        }
    }

    /// Starts a worker for every image of this host with a task.
    pub(super) async fn dispatch_image_tasks(self: &Arc<Self>) -> Result<(), StoreError> {
        for image in self.store.image_tasks(&self.config.host).await? {
            let key = format!("image:{}", image.uuid);
            if !self.busy().insert(key.clone()) {
                continue;
            }
            let agent = Arc::clone(self);
            tokio::spawn(async move {
                agent.image_task(image).await;
                agent.busy().release(&key);
                agent.idle.notify_one();
            });
        }
        Ok(())
    }

    async fn image_task(&self, image: Image) {
        let result = match image.task {
            Some(ImageTask::Pulling) => self.pull_image_row(&image).await,
            Some(ImageTask::Deleting) => self.delete_image_row(&image).await,
            None => Ok(()),
        };
        if let Err(err) = result {
            tracing::warn!(uuid = %image.uuid, error = %err, "image task failed");
        }
    }

    /// A pull asked for through `POST /v1/images`, with the credentials of
    /// the image's project for that registry domain, if it has some. A
    /// failed pull removes the row (the host does not have the image) and
    /// logs why.
    async fn pull_image_row(&self, image: &Image) -> Result<(), StoreError> {
        let reference = format!("{}:{}", image.repo, image.tag);
        let registry = self
            .project_registry_for(&image.project_id, &image.repo)
            .await?;
        let auth = match &registry {
            Some(r) => self.credentials(r).ok().flatten(),
            None => None,
        };
        let pulled = tokio::time::timeout(
            self.config.pull_timeout,
            self.runtime.pull(&reference, auth.as_ref(), &|_| {}),
        )
        .await;
        let failure = match pulled {
            Ok(Ok(())) => match self.runtime.image(&reference).await {
                Ok(Some(info)) => {
                    let mut done = image.clone();
                    done.image_id = Some(info.id);
                    done.size = Some(info.size.to_string());
                    done.task = None;
                    done.updated_at = Some(Utc::now());
                    self.store
                        .update_image_if(&done, Some(ImageTask::Pulling))
                        .await?;
                    tracing::info!(uuid = %image.uuid, %reference, "image pulled");
                    return Ok(());
                }
                Ok(None) => "the engine does not show the image after the pull".to_owned(),
                Err(e) => e.to_string(),
            },
            Ok(Err(error)) => pull_failure_reason(&reference, &error, registry.as_ref()),
            Err(_) => format!(
                "Pulling image {reference} did not finish within {} s",
                self.config.pull_timeout.as_secs()
            ),
        };
        tracing::warn!(uuid = %image.uuid, %reference, reason = %failure, "image pull failed; removing its record");
        if let Some(current) = self.store.get_image(&image.uuid).await?
            && current.task == Some(ImageTask::Pulling)
        {
            self.store.delete_image(&image.uuid).await?;
        }
        Ok(())
    }

    /// A delete asked for through `DELETE /v1/images/{uuid}`: the row is
    /// `repo:tag` on this host, so that tag is removed (the image itself
    /// goes with its last tag, as `docker rmi` does). An image a container
    /// still uses stays, and its row with it.
    async fn delete_image_row(&self, image: &Image) -> Result<(), StoreError> {
        let target = format!("{}:{}", image.repo, image.tag);
        match self.runtime.remove_image(&target).await {
            Ok(()) => {
                self.store.delete_image(&image.uuid).await?;
                tracing::info!(uuid = %image.uuid, %target, "image deleted");
            }
            Err(err) => {
                tracing::warn!(uuid = %image.uuid, %target, error = %err, "image delete failed; keeping it");
                let mut kept = image.clone();
                kept.task = None;
                kept.updated_at = Some(Utc::now());
                self.store
                    .update_image_if(&kept, Some(ImageTask::Deleting))
                    .await?;
            }
        }
        Ok(())
    }

    /// A registry of `project_id` for the domain `repo` names, if any.
    async fn project_registry_for(
        &self,
        project_id: &str,
        repo: &str,
    ) -> Result<Option<Registry>, StoreError> {
        let Some(domain) = ImageRef::parse(repo).ok().and_then(|r| r.domain) else {
            return Ok(None);
        };
        let query = RegistryListQuery {
            project_id: Some(project_id.to_owned()),
            filters: vec![("domain".into(), domain)],
            limit: 1,
            marker: None,
            sort_key: "id".into(),
            sort_dir: SortDir::Asc,
        };
        Ok(self.store.list_registries(&query).await?.into_iter().next())
    }
}

/// How waiting for a pull ended, when it did not succeed.
enum PullWait {
    Failed(PullError),
    TimedOut,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_pulls_always_by_default() {
        let policies = [
            (None, PullPolicy::Always),
            (Some("always"), PullPolicy::Always),
            (Some("ifnotpresent"), PullPolicy::IfNotPresent),
            (Some("never"), PullPolicy::Never),
        ];
        for (given, expected) in policies {
            let c = Container {
                image_pull_policy: given.map(str::to_owned),
                ..crate::reconciler::tests::record("x")
            };
            assert_eq!(pull_policy(&c), expected, "{given:?}");
        }
    }

    #[test]
    fn pull_decisions_cover_every_case() {
        use PullPolicy::{Always, IfNotPresent, Never};
        for (policy, present, expected) in [
            (Always, true, true),
            (Always, false, true),
            (IfNotPresent, true, false),
            (IfNotPresent, false, true),
            (Never, true, false),
            (Never, false, false),
        ] {
            assert_eq!(
                needs_pull(policy, present),
                expected,
                "{policy:?} {present}"
            );
        }
        let errors = || {
            [
                PullError::Unreachable("dial tcp".into()),
                PullError::Denied("unauthorized".into()),
                PullError::NotFound("manifest unknown".into()),
                PullError::Failed("other".into()),
            ]
        };
        for present in [true, false] {
            for credentials in [true, false] {
                for error in errors() {
                    let allowed = may_use_local_copy(&error, present, credentials);
                    let expected =
                        present && !credentials && matches!(error, PullError::Unreachable(_));
                    assert_eq!(allowed, expected, "{error:?} {present} {credentials}");
                }
            }
        }
    }

    #[test]
    fn failure_reasons_say_what_to_do() {
        let registry = Registry {
            uuid: "r-1".into(),
            name: Some("mine".into()),
            domain: "127.0.0.1:5000".into(),
            username: Some("alice".into()),
            password_sealed: Some("v1:x".into()),
            project_id: "p".into(),
            user_id: "u".into(),
            created_at: Utc::now(),
            updated_at: None,
        };
        let denied = PullError::Denied("unauthorized: authentication required".into());
        let text = pull_failure_reason("127.0.0.1:5000/box:1", &denied, Some(&registry));
        assert!(
            text.contains("refused the credentials of registry mine (r-1)"),
            "{text}"
        );
        assert!(text.contains("check its username and password"), "{text}");
        assert!(text.contains("unauthorized"), "{text}");
        let text = pull_failure_reason("box:1", &denied, None);
        assert!(text.contains("--registry"), "{text}");
        let text = pull_failure_reason(
            "box:9",
            &PullError::NotFound("manifest unknown".into()),
            None,
        );
        assert!(text.contains("no such image or tag"), "{text}");
        let text = pull_failure_reason(
            "box:1",
            &PullError::Unreachable("connection refused".into()),
            None,
        );
        assert!(text.contains("could not be reached"), "{text}");
    }

    mod agent {
        use zun_secrets::SecretKey;
        use zun_store::RegistryStore;
        use zun_types::ContainerStatus;

        use super::*;
        use crate::reconciler::tests::{
            FakeEngine, drain, record, setup_with, status_of, submit_create,
        };

        fn key(dir: &tempfile::TempDir) -> SecretKey {
            SecretKey::load_or_create(&dir.path().join("secret.key")).expect("key")
        }

        fn registry(key: &SecretKey) -> Registry {
            let uuid = uuid::Uuid::new_v4().to_string();
            Registry {
                password_sealed: Some(key.seal("s3cret", &uuid).expect("seal")),
                uuid,
                name: Some("mine".into()),
                domain: "reg.example:5000".into(),
                username: Some("alice".into()),
                project_id: "p".into(),
                user_id: "u".into(),
                created_at: Utc::now(),
                updated_at: None,
            }
        }

        #[tokio::test]
        async fn a_registry_image_is_pulled_with_its_opened_password() {
            let dir = tempfile::tempdir().expect("tempdir");
            let key = key(&dir);
            let (agent, store, engine) = setup_with(FakeEngine::default(), Some(key.clone())).await;
            let r = registry(&key);
            store.insert_registry(&r).await.expect("registry");
            let mut c = record("private");
            c.image = "team/app:1".into();
            c.registry_id = Some(r.uuid.clone());
            submit_create(&store, &c).await;
            drain(&agent, &store).await;
            assert_eq!(
                status_of(&store, &c.uuid).await,
                (ContainerStatus::Running, None)
            );
            let expected = RegistryAuth {
                server: "reg.example:5000".into(),
                username: "alice".into(),
                password: "s3cret".into(),
            };
            let pulls = engine.pulls.lock().expect("pulls").clone();
            assert_eq!(
                pulls,
                vec![("reg.example:5000/team/app:1".to_owned(), Some(expected))]
            );
            let created = engine.created_from.lock().expect("creates").clone();
            assert_eq!(created, vec!["reg.example:5000/team/app:1".to_owned()]);
        }

        #[tokio::test]
        async fn without_the_key_the_create_fails_saying_why() {
            let dir = tempfile::tempdir().expect("tempdir");
            let (agent, store, engine) = setup_with(FakeEngine::default(), None).await;
            let r = registry(&key(&dir));
            store.insert_registry(&r).await.expect("registry");
            let mut c = record("private");
            c.registry_id = Some(r.uuid.clone());
            submit_create(&store, &c).await;
            drain(&agent, &store).await;
            let (status, reason) = status_of(&store, &c.uuid).await;
            assert_eq!(status, ContainerStatus::Error);
            assert!(reason.expect("reason").contains("no secret key"));
            assert!(engine.pulls.lock().expect("pulls").is_empty());
        }

        #[tokio::test]
        async fn an_unreachable_registry_falls_back_only_without_credentials() {
            let dir = tempfile::tempdir().expect("tempdir");
            let key = key(&dir);
            let engine = FakeEngine {
                registry_unreachable: true,
                ..FakeEngine::default()
            };
            let (agent, store, _) = setup_with(engine, Some(key.clone())).await;
            let public = record("public");
            submit_create(&store, &public).await;
            let r = registry(&key);
            store.insert_registry(&r).await.expect("registry");
            let mut private = record("private");
            private.registry_id = Some(r.uuid.clone());
            submit_create(&store, &private).await;
            drain(&agent, &store).await;
            // The engine has both images (the fake says so): only the one
            // without credentials may run from the local copy.
            assert_eq!(
                status_of(&store, &public.uuid).await.0,
                ContainerStatus::Running
            );
            let (status, reason) = status_of(&store, &private.uuid).await;
            assert_eq!(status, ContainerStatus::Error);
            assert!(reason.expect("reason").contains("could not be reached"));
        }
    }
}
