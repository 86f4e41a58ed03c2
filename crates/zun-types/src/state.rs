//! Which API actions are allowed in which status (reference §5.2), with
//! upstream's 409 message.

use crate::container::ContainerStatus::{self, *};
use crate::error::ApiError;

/// An action key of upstream's `VALID_STATES`; its name appears verbatim in
/// the 409 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Start,
    Stop,
    Reboot,
    Rebuild,
    Pause,
    Unpause,
    Kill,
    Execute,
    ExecuteResize,
    Attach,
    Resize,
    Top,
    Stats,
    Logs,
    GetArchive,
    PutArchive,
    Commit,
    Update,
    ResizeContainer,
    AddSecurityGroup,
    RemoveSecurityGroup,
    Delete,
    DeleteForce,
    DeleteAfterStop,
}

impl Action {
    pub const ALL: [Action; 24] = [
        Action::Start,
        Action::Stop,
        Action::Reboot,
        Action::Rebuild,
        Action::Pause,
        Action::Unpause,
        Action::Kill,
        Action::Execute,
        Action::ExecuteResize,
        Action::Attach,
        Action::Resize,
        Action::Top,
        Action::Stats,
        Action::Logs,
        Action::GetArchive,
        Action::PutArchive,
        Action::Commit,
        Action::Update,
        Action::ResizeContainer,
        Action::AddSecurityGroup,
        Action::RemoveSecurityGroup,
        Action::Delete,
        Action::DeleteForce,
        Action::DeleteAfterStop,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Reboot => "reboot",
            Action::Rebuild => "rebuild",
            Action::Pause => "pause",
            Action::Unpause => "unpause",
            Action::Kill => "kill",
            Action::Execute => "execute",
            Action::ExecuteResize => "execute_resize",
            Action::Attach => "attach",
            Action::Resize => "resize",
            Action::Top => "top",
            Action::Stats => "stats",
            Action::Logs => "logs",
            Action::GetArchive => "get_archive",
            Action::PutArchive => "put_archive",
            Action::Commit => "commit",
            Action::Update => "update",
            Action::ResizeContainer => "resize_container",
            Action::AddSecurityGroup => "add_security_group",
            Action::RemoveSecurityGroup => "remove_security_group",
            Action::Delete => "delete",
            Action::DeleteForce => "delete_force",
            Action::DeleteAfterStop => "delete_after_stop",
        }
    }

    pub fn allowed_states(self) -> &'static [ContainerStatus] {
        match self {
            Action::Start => &[Created, Stopped, Error],
            Action::Stop
            | Action::Pause
            | Action::Kill
            | Action::Execute
            | Action::ExecuteResize
            | Action::Attach
            | Action::Resize
            | Action::Top
            | Action::Stats => &[Running],
            Action::Reboot | Action::Rebuild => &[Created, Running, Stopped, Error],
            Action::Unpause => &[Paused],
            Action::Logs => &[Created, Error, Paused, Running, Stopped, Unknown],
            Action::GetArchive | Action::PutArchive => &[Created, Paused, Running, Stopped],
            Action::Commit => &[Running, Stopped, Paused],
            Action::Update
            | Action::ResizeContainer
            | Action::AddSecurityGroup
            | Action::RemoveSecurityGroup => &[Created, Running, Stopped, Paused],
            // Upstream's list plus `Unknown`: a container on a host that is
            // down may be deleted, and the delete finishes when the host
            // reports again (an admin's force delete does not wait).
            Action::Delete => &[Created, Error, Stopped, Deleted, Dead, Unknown],
            Action::DeleteForce => &[
                Created, Creating, Error, Running, Stopped, Unknown, Deleted, Dead, Restarting,
                Rebuilding, Deleting,
            ],
            Action::DeleteAfterStop => &[Running, Created, Error, Stopped, Deleted, Dead],
        }
    }

    /// `Ok` when `status` allows this action, else upstream's 409.
    pub fn check(self, uuid: &str, status: ContainerStatus) -> Result<(), ApiError> {
        if self.allowed_states().contains(&status) {
            Ok(())
        } else {
            Err(ApiError::new(
                409,
                "invalid-state-exception",
                format!("Cannot {} container {uuid} in {status} state", self.key()),
            ))
        }
    }
}

/// What a capsule is, from what its members are: the status and reason its
/// record shows once its create has finished. Init containers count only
/// when they failed (having run to completion, they are `Stopped`). The
/// worst wins: a member in `Error` (named in the reason), then `Unknown`
/// (its host is down), then one still `Creating`; otherwise `Running` while
/// any container runs (or restarts), `Paused` when all are, `Created`
/// before any started, and `Stopped` when all have exited (the reason
/// names any that failed).
pub fn capsule_status(members: &[&crate::Container]) -> (ContainerStatus, Option<String>) {
    let name = |c: &crate::Container| {
        c.capsule
            .as_ref()
            .and_then(|m| m.template_name.clone())
            .unwrap_or_else(|| c.name.clone())
    };
    let failed = |c: &crate::Container| {
        let detail = c
            .status_reason
            .clone()
            .or_else(|| c.status_detail.clone())
            .unwrap_or_else(|| "unknown error".into());
        format!("container {}: {detail}", name(c))
    };
    if let Some(broken) = members.iter().find(|c| c.status == Error) {
        return (Error, Some(failed(broken)));
    }
    if members.iter().any(|c| c.status == Unknown) {
        return (Unknown, None);
    }
    let regular: Vec<&crate::Container> = members
        .iter()
        .copied()
        .filter(|c| !c.capsule.as_ref().is_some_and(|m| m.init))
        .collect();
    if regular.is_empty() || regular.iter().any(|c| c.status == Creating) {
        return (Creating, None);
    }
    if regular
        .iter()
        .any(|c| matches!(c.status, Running | Restarting))
    {
        let restarting: Vec<String> = regular
            .iter()
            .filter(|c| c.status == Restarting)
            .map(|c| name(c))
            .collect();
        let reason =
            (!restarting.is_empty()).then(|| format!("restarting: {}", restarting.join(", ")));
        return (Running, reason);
    }
    if regular.iter().all(|c| c.status == Paused) {
        return (Paused, None);
    }
    if regular.iter().all(|c| c.status == Created) {
        return (Created, None);
    }
    let exited_badly: Vec<String> = regular
        .iter()
        .filter(|c| {
            c.status_detail
                .as_deref()
                .is_some_and(|d| d.starts_with("Exited(") && !d.starts_with("Exited(0)"))
        })
        .map(|c| failed(c))
        .collect();
    (
        Stopped,
        (!exited_badly.is_empty()).then(|| exited_badly.join("; ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{CapsuleMember, RecordKind};

    fn member(name: &str, init: bool, status: ContainerStatus) -> crate::Container {
        crate::Container {
            kind: RecordKind::Member,
            status,
            capsule: Some(CapsuleMember {
                capsule_uuid: "c".into(),
                init,
                index: 0,
                template_name: Some(name.into()),
            }),
            ..crate::Container::new("u", format!("capsule-c-{name}"), "p", "u", "busybox")
        }
    }

    fn status_of(members: &[crate::Container]) -> (ContainerStatus, Option<String>) {
        capsule_status(&members.iter().collect::<Vec<_>>())
    }

    #[test]
    fn a_capsule_is_what_its_members_are_the_worst_first() {
        let init_done = member("init", true, Stopped);
        let run = |s| {
            vec![
                init_done.clone(),
                member("web", false, Running),
                member("side", false, s),
            ]
        };
        assert_eq!(status_of(&run(Running)), (Running, None));
        assert_eq!(status_of(&run(Creating)), (Creating, None));
        assert_eq!(status_of(&run(Unknown)), (Unknown, None));
        assert_eq!(
            status_of(&run(Restarting)),
            (Running, Some("restarting: side".into()))
        );
        // One stopped beside a running one: the capsule still runs.
        assert_eq!(status_of(&run(Stopped)).0, Running);
        let mut broken = run(Running);
        broken[2].status = Error;
        broken[2].status_reason = Some("no such image".into());
        assert_eq!(
            status_of(&broken),
            (Error, Some("container side: no such image".into()))
        );
        let mut failed_init = run(Creating);
        failed_init[0].status = Error;
        failed_init[0].status_reason = Some("exited with code 3".into());
        assert_eq!(status_of(&failed_init).0, Error);
        assert!(
            status_of(&failed_init)
                .1
                .is_some_and(|r| r.contains("init"))
        );
    }

    #[test]
    fn a_capsule_whose_containers_all_ended_is_stopped_naming_failures() {
        let mut ok = member("a", false, Stopped);
        ok.status_detail = Some("Exited(0) 1 minute ago".into());
        let mut bad = member("b", false, Stopped);
        bad.status_detail = Some("Exited(2) 1 minute ago".into());
        assert_eq!(status_of(std::slice::from_ref(&ok)), (Stopped, None));
        let (status, reason) = status_of(&[ok, bad]);
        assert_eq!(status, Stopped);
        assert_eq!(
            reason.as_deref(),
            Some("container b: Exited(2) 1 minute ago")
        );
        assert_eq!(status_of(&[member("a", false, Paused)]), (Paused, None));
        assert_eq!(status_of(&[member("a", false, Created)]), (Created, None));
        assert_eq!(status_of(&[]), (Creating, None));
        // Every status of one member gives some capsule status, never a panic.
        for s in ContainerStatus::ALL {
            let _ = status_of(&[member("a", false, s)]);
        }
    }

    /// The whole table of reference §5.2, written out independently of the
    /// match above, checked for every (action, status) pair.
    #[test]
    fn every_action_status_pair_matches_the_reference() {
        let table: &[(&str, &[&str])] = &[
            ("start", &["Created", "Stopped", "Error"]),
            ("stop", &["Running"]),
            ("reboot", &["Created", "Running", "Stopped", "Error"]),
            ("rebuild", &["Created", "Running", "Stopped", "Error"]),
            ("pause", &["Running"]),
            ("unpause", &["Paused"]),
            ("kill", &["Running"]),
            ("execute", &["Running"]),
            ("execute_resize", &["Running"]),
            ("attach", &["Running"]),
            ("resize", &["Running"]),
            ("top", &["Running"]),
            ("stats", &["Running"]),
            (
                "logs",
                &[
                    "Created", "Error", "Paused", "Running", "Stopped", "Unknown",
                ],
            ),
            ("get_archive", &["Created", "Paused", "Running", "Stopped"]),
            ("put_archive", &["Created", "Paused", "Running", "Stopped"]),
            ("commit", &["Running", "Stopped", "Paused"]),
            ("update", &["Created", "Running", "Stopped", "Paused"]),
            (
                "resize_container",
                &["Created", "Running", "Stopped", "Paused"],
            ),
            (
                "add_security_group",
                &["Created", "Running", "Stopped", "Paused"],
            ),
            (
                "remove_security_group",
                &["Created", "Running", "Stopped", "Paused"],
            ),
            // + Unknown (ours: a down host's containers can be deleted).
            (
                "delete",
                &["Created", "Error", "Stopped", "Deleted", "Dead", "Unknown"],
            ),
            (
                "delete_force",
                &[
                    "Created",
                    "Creating",
                    "Error",
                    "Running",
                    "Stopped",
                    "Unknown",
                    "Deleted",
                    "Dead",
                    "Restarting",
                    "Rebuilding",
                    "Deleting",
                ],
            ),
            (
                "delete_after_stop",
                &["Running", "Created", "Error", "Stopped", "Deleted", "Dead"],
            ),
        ];
        assert_eq!(table.len(), Action::ALL.len());
        for action in Action::ALL {
            let (_, allowed) = table
                .iter()
                .find(|(key, _)| *key == action.key())
                .expect("every action is in the table");
            for status in ContainerStatus::ALL {
                let expected = allowed.contains(&status.as_str());
                let got = action.check("u", status);
                assert_eq!(got.is_ok(), expected, "{} in {status}", action.key());
                if let Err(err) = got {
                    assert_eq!(err.status, 409);
                    assert_eq!(err.code, "invalid-state-exception");
                    assert_eq!(
                        err.detail,
                        format!("Cannot {} container u in {status} state", action.key())
                    );
                }
            }
        }
    }
}
