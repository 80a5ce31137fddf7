//! `images/build.sh` on a ToolBox host: images under the same names that are not ours (the real
//! ToolBox's `toolboxv2:latest` and `:dev`) are never replaced.

use std::io::Write;
use std::process::{Command, Stdio};

use cm_testkit::{TestEnv, docker, require_docker};

/// Removes the test's images, even when the test fails.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for image in &self.0 {
            docker(&["image", "rm", "-f", image]);
        }
    }
}

fn image_id(image: &str) -> String {
    let out = docker(&["image", "inspect", "-f", "{{.Id}}", image]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn build_sh_leaves_a_toolbox_hosts_own_images_untouched() {
    if !require_docker() {
        return;
    }
    let env = TestEnv::new();
    let repo = format!("cm-test-toolbox-{}", env.run);
    let images = Images(vec![format!("{repo}:latest"), format!("{repo}:dev")]);
    // The host's own images: anything without our `managed-by` label.
    let mut build = Command::new("timeout")
        .args([
            "120",
            "docker",
            "build",
            "-q",
            "-t",
            &images.0[0],
            "-t",
            &images.0[1],
            "-",
        ])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    build
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM cm-base:bookworm\nLABEL managed-by=toolbox-host org.containermanager.recipe=\n")
        .unwrap();
    let built = build.wait_with_output().unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let before: Vec<String> = images.0.iter().map(|i| image_id(i)).collect();
    assert!(before.iter().all(|id| !id.is_empty()));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../images/build.sh");
    let out = Command::new("timeout")
        .args(["900", script])
        .env("CM_TOOLBOX_REPO", &repo)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("{repo}:latest exists and is not ours")),
        "{said}"
    );
    assert!(
        said.contains(&format!("{repo}:dev exists and is not ours")),
        "{said}"
    );
    let after: Vec<String> = images.0.iter().map(|i| image_id(i)).collect();
    assert_eq!(before, after, "the host's images were replaced");
}
