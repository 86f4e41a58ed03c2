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

#[cfg(test)]
mod tests {
    use super::*;

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
