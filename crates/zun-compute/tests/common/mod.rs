//! What the real-engine tests of the Docker driver share: the engine
//! socket (`ZUN_TEST_DOCKER_SOCKET`, default `/var/run/docker.sock`), a
//! container record, and clean-up of what a test made even when it fails.

#![allow(dead_code)] // each test binary uses its own subset

use bollard::query_parameters::{RemoveContainerOptions, RemoveImageOptions};
use bollard::{API_DEFAULT_VERSION, Docker};
use zun_compute::DockerRuntime;
use zun_types::Container;
use zun_types::container::DesiredState;

pub const HOST: &str = "zun-test-host";
pub const IMAGE: &str = "busybox:latest";

pub fn socket() -> String {
    std::env::var("ZUN_TEST_DOCKER_SOCKET").unwrap_or_else(|_| "/var/run/docker.sock".to_owned())
}

pub async fn runtime() -> DockerRuntime {
    let socket = socket();
    DockerRuntime::connect(&socket, HOST)
        .await
        .unwrap_or_else(|e| panic!("the Docker engine at {socket} must be reachable: {e}"))
}

/// A plain bollard client, to check what the engine really holds.
pub async fn engine() -> Docker {
    Docker::connect_with_unix(&socket(), 120, API_DEFAULT_VERSION)
        .expect("engine socket")
        .negotiate_version()
        .await
        .expect("engine version")
}

/// Force-removes the tracked engine containers, then the tracked images,
/// when dropped, even when the test failed half way.
#[derive(Default)]
pub struct Cleanup {
    containers: Vec<String>,
    images: Vec<String>,
}

impl Cleanup {
    pub fn container(&mut self, name: String) -> String {
        self.containers.push(name.clone());
        name
    }
    pub fn image(&mut self, reference: String) -> String {
        self.images.push(reference.clone());
        reference
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let containers = std::mem::take(&mut self.containers);
        let images = std::mem::take(&mut self.images);
        let socket = socket();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(docker) = Docker::connect_with_unix(&socket, 60, API_DEFAULT_VERSION) else {
                    return;
                };
                let Ok(docker) = docker.negotiate_version().await else {
                    return;
                };
                for name in containers {
                    let options = RemoveContainerOptions {
                        force: true,
                        v: true,
                        link: false,
                    };
                    let _ = docker.remove_container(&name, Some(options)).await;
                }
                for image in images {
                    let options = RemoveImageOptions {
                        force: true,
                        noprune: false,
                    };
                    let _ = docker.remove_image(&image, Some(options), None).await;
                }
            });
        })
        .join();
    }
}

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A container record of this host running `command` in busybox.
pub fn record(uuid: &str, command: &[&str]) -> Container {
    Container {
        command: Some(command.iter().map(|s| (*s).to_owned()).collect()),
        host: Some(HOST.into()),
        desired_state: DesiredState::Running,
        ..Container::new(uuid, format!("test-{uuid}"), "p", "u", IMAGE)
    }
}
