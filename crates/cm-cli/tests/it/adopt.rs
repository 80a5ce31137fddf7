//! `cm adopt`: containers the Python original made (plain `docker run` with its labels) survive
//! `reconcile --prune`, are taken over with their ports, data and key, and are then managed like
//! our own; `--recreate` puts them on this installation's profile.

use serde_json::{Value, json};

use crate::helpers::{World, http_get, wait_for_http};
use cm_testkit::{docker, docker_ok};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINAyBAuLdrWMu/V0J2VG/6qBRwYHp3oIAkOUc24aiY2a alice@laptop";

/// Starts a container as the original did: its name, volume and labels, ports on 127.0.0.1.
fn original(
    world: &World,
    user: &str,
    kind: &str,
    ports: (u16, Option<u16>),
    env: &[&str],
) -> (String, String) {
    let suffix = "1a2b3c4d";
    let name = format!("{user}_{kind}_{suffix}");
    let volume = format!("container_{user}_{kind}_{suffix}");
    let test_label = world.env.label_filter().trim_start_matches("label=").to_owned();
    let owner = format!("cm.test.owner={}", cm_testkit::owner_id());
    docker_ok(&[
        "volume",
        "create",
        "--label",
        &test_label,
        "--label",
        &owner,
        &volume,
    ]);
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        name.clone(),
        "--restart".into(),
        "unless-stopped".into(),
        "-v".into(),
        format!("{volume}:/data"),
        "-p".into(),
        format!("127.0.0.1:{}:8080", ports.0),
    ];
    let mut labels = vec![
        "managed-by=ContainerManager".to_owned(),
        format!("user-id={user}"),
        format!("container-type={kind}"),
        format!("port={}", ports.0),
        test_label,
        owner,
    ];
    if let Some(ssh) = ports.1 {
        args.extend(["-p".into(), format!("127.0.0.1:{ssh}:2222")]);
        labels.push(format!("ssh-port={ssh}"));
    }
    for label in labels {
        args.extend(["--label".into(), label]);
    }
    for var in [format!("USER_ID={user}"), "MODE=custom".to_owned()]
        .into_iter()
        .chain(env.iter().map(|v| (*v).to_owned()))
    {
        args.extend(["-e".into(), var]);
    }
    args.push("toolboxv2:latest".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_ok(&args);
    (name, volume)
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_originals_containers_survive_prune_and_are_adopted_with_their_ports_data_and_key() {
    let Some(world) = World::new() else { return };
    let (_, last) = world.env.slot.port_range();
    let (port, ssh_port) = (last, last - 1);
    let user = world.env.user("orig");
    let (old_name, volume) = original(
        &world,
        &user,
        "custom",
        (port, Some(ssh_port)),
        &["GREETING=hello", &format!("SSH_PUBLIC_KEY={KEY}")],
    );
    docker_ok(&["exec", &old_name, "sh", "-c", "echo kept > /data/kept.txt"]);
    assert!(wait_for_http(port), "the original's app answers");

    // Prune leaves it alone: it is not this installation's.
    let pruned = world.cm_json(&["reconcile", "--prune"]);
    let finding = &pruned["findings"][0];
    assert_eq!(
        (finding["name"].as_str(), finding["outcome"].as_str()),
        (Some(old_name.as_str()), Some("reported")),
        "{pruned:#}"
    );
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.State.Running}}", &old_name]),
        "true"
    );

    // A dry run says what would happen and changes nothing.
    let planned = world.cm_json(&["adopt", "--dry-run", "--user", &user]);
    let name = format!("{user}_custom");
    assert_eq!(outcomes(&planned), [(old_name.clone(), "would_adopt".to_owned())]);
    assert_eq!(planned[0]["adopted_as"], name.as_str());
    assert!(
        docker(&["inspect", &old_name]).status.success(),
        "not renamed by a dry run"
    );
    assert_eq!(world.cm_json(&["list", &user]).as_array().unwrap().len(), 0);

    // Adopted in place: the same container, renamed, with its ports, volume, env and key.
    let id = docker_ok(&["inspect", "-f", "{{.Id}}", &old_name]);
    let adopted = world.cm_json(&["adopt", "--user", &user]);
    assert_eq!(
        outcomes(&adopted),
        [(old_name.clone(), "adopted".to_owned())],
        "{adopted:#}"
    );
    assert!(
        adopted[0]["detail"].as_str().unwrap().contains("SSH key"),
        "{adopted:#}"
    );
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.Id}}", &name]),
        id,
        "the very container"
    );
    let spec = world.cm_json(&["get", &name]);
    assert_eq!(spec["container_id"], id.as_str());
    assert_eq!(spec["port"], port);
    assert_eq!(spec["ssh_port"], ssh_port);
    assert_eq!(spec["volume_name"], volume.as_str());
    assert_eq!(spec["env"]["GREETING"], "hello");
    assert!(spec["env"].get("SSH_PUBLIC_KEY").is_none(), "{spec:#}");
    let keys = world.cm_json(&["ssh-keys", &name]);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys:#}");
    assert_eq!(world.cm_json(&["list", &user])[0]["status"], "running");
    // A second run finds nothing more to do; reconcile finds nothing wrong.
    assert_eq!(world.cm_json(&["adopt", "--user", &user]), json!([]));
    let report = world.cm_json(&["reconcile", "--dry-run"]);
    assert_eq!(report["findings"], json!([]), "{report:#}");

    // Managed like our own: stop, start, update (re-created on our profile), delete.
    world.cm_ok(&["stop", &name]);
    assert_eq!(world.cm_json(&["get", &name])["status"], "exited");
    world.cm_ok(&["start", &name]);
    assert!(wait_for_http(port));
    let updated = world.cm_json(&["update", &name]);
    assert_ne!(updated["container_id"], id.as_str());
    assert_eq!(
        (updated["port"].as_u64(), updated["ssh_port"].as_u64()),
        (Some(port.into()), Some(ssh_port.into()))
    );
    let labels = world.inspect(&name)["Config"]["Labels"].clone();
    assert_eq!(
        labels["org.containermanager.installation"].as_str().map(str::len),
        Some(16),
        "{labels:#}"
    );
    assert!(
        !docker(&["inspect", &id]).status.success(),
        "the original container is gone"
    );
    assert!(wait_for_http(port));
    let (_, body) = http_get(port, "/").unwrap();
    assert!(body.contains(&user), "{body}");
    let kept = world.cm_ok(&["exec", &name, "cat", "/data/kept.txt"]);
    assert_eq!(kept.trim(), "kept");
    world.cm_ok(&["delete", &name, "--purge", "--force"]);
    assert!(
        !docker(&["volume", "inspect", &volume]).status.success(),
        "purged"
    );
    world.assert_in_agreement();
}

#[test]
fn recreate_with_the_originals_records_puts_them_on_this_profile_and_keeps_their_data() {
    let Some(world) = World::new() else { return };
    let (_, last) = world.env.slot.port_range();
    let port = last - 2;
    let user = world.env.user("rec");
    let (old_name, volume) = original(&world, &user, "preview_server", (port, None), &[]);
    docker_ok(&[
        "exec",
        &old_name,
        "sh",
        "-c",
        "mkdir -p /data/www && echo kept > /data/www/kept.txt",
    ]);
    let id = docker_ok(&["inspect", "-f", "{{.Id}}", &old_name]);
    // The original's TBEF.DB export: values are JSON text; the env is only in the records.
    let spec = json!({
        "container_id": id, "container_name": old_name, "container_type": "preview_server",
        "user_id": user, "port": port, "internal_port": 8600, "image": "toolboxv2:latest",
        "volume_name": volume, "status": "running", "created_at": 1_767_225_600.5_f64,
        "env": {"USER_ID": user, "MODE": "preview", "PROJECT": "from-records"}, "ssh_port": 0
    });
    let records = json!({
        format!("CONTAINER::{id}"): spec.to_string(),
        format!("CONTAINER_USER::{user}"): json!([id]).to_string(),
        "CONTAINER_PORT_POOL": json!([port]).to_string(),
    });
    let path = world.env.path().join("records.json");
    std::fs::write(&path, records.to_string()).unwrap();

    let name = format!("{user}_preview_server");
    let adopted = world.cm_json(&[
        "adopt",
        "--recreate",
        "--user",
        &user,
        "--records",
        path.to_str().unwrap(),
    ]);
    assert_eq!(
        outcomes(&adopted),
        [(old_name.clone(), "recreated".to_owned())],
        "{adopted:#}"
    );
    assert!(
        !docker(&["inspect", &id]).status.success(),
        "the original container is gone"
    );
    let spec = world.cm_json(&["get", &name]);
    assert_eq!(spec["port"], port);
    assert_eq!(spec["volume_name"], volume.as_str());
    assert_eq!(spec["env"]["PROJECT"], "from-records");
    assert_eq!(spec["env"]["MODE"], "preview");
    assert_eq!(spec["created_at"], "2026-01-01T00:00:00Z");
    let env = world.inspect(&name)["Config"]["Env"].clone();
    assert!(
        env.as_array().unwrap().contains(&json!("PROJECT=from-records")),
        "{env:#}"
    );
    let kept = world.cm_ok(&["exec", &name, "cat", "/data/www/kept.txt"]);
    assert_eq!(kept.trim(), "kept");
    world.cm_ok(&["delete", &name, "--purge", "--force"]);
    world.assert_in_agreement();
}
