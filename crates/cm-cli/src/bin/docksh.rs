//! `docksh`: the user's side of SSH access to a ContainerManager container.
//!
//! `docksh setup` makes an ed25519 key pair for this purpose only (`~/.ssh/docksh_id_ed25519`) and
//! prints the public line to send to the admin; `docksh connect <host> <port>` runs the system
//! `ssh` with that key, the user `cli`, a known_hosts file of its own and a terminal. `DOCKSH_HOME`
//! names a directory to use instead of `~/.ssh`.
//!
//! Exit codes: `connect` passes on the exit code of `ssh`; otherwise 0 on success, 1 when something
//! is missing or fails, 2 for invalid arguments.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use cm_core::{SSH_USER, SshPublicKey};

/// The private key's file name; the public key adds `.pub`.
const KEY_FILE: &str = "docksh_id_ed25519";
/// The known_hosts file docksh keeps apart from the user's own.
const KNOWN_HOSTS_FILE: &str = "docksh_known_hosts";

#[derive(Debug, Parser)]
#[command(
    name = "docksh",
    version,
    about = "Connect to your ContainerManager container over SSH",
    after_help = "Files live in ~/.ssh (or in $DOCKSH_HOME): docksh_id_ed25519, docksh_id_ed25519.pub, docksh_known_hosts."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create your docksh key pair (once) and print the public key to send to your admin.
    Setup {
        /// Replace an existing docksh key pair with a new one.
        #[arg(long)]
        force: bool,
    },
    /// Print your public key again.
    Show,
    /// Open a terminal in your container: `docksh connect <host> <port> [-- ssh options or command]`.
    Connect {
        /// The server's host name or IP address, as your admin gave it.
        host: String,
        /// The SSH port of your container, as your admin gave it.
        port: String,
        /// Passed to ssh after the destination: more ssh options, or a command to run instead.
        #[arg(last = true)]
        ssh_args: Vec<OsString>,
    },
}

/// An error whose exit code is 2: the arguments were wrong, nothing was done.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Setup { force } => setup(force).map(|()| ExitCode::SUCCESS),
        Cmd::Show => show().map(|()| ExitCode::SUCCESS),
        Cmd::Connect { host, port, ssh_args } => connect(&host, &port, &ssh_args),
    };
    result.unwrap_or_else(|err| {
        let message = format!("{err:#}").replace(['\n', '\r'], " ");
        // Nothing better to do if stderr itself is gone.
        let _ = writeln!(io::stderr(), "docksh: {message}");
        if err.is::<Usage>() {
            ExitCode::from(2)
        } else {
            ExitCode::FAILURE
        }
    })
}

/// Where docksh keeps its files.
struct Paths {
    dir: PathBuf,
    key: PathBuf,
    public: PathBuf,
    known_hosts: PathBuf,
}

impl Paths {
    fn new() -> Result<Paths> {
        let dir = match std::env::var_os("DOCKSH_HOME").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => {
                let home = std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| anyhow!("HOME is not set: set HOME or DOCKSH_HOME"))?;
                PathBuf::from(home).join(".ssh")
            }
        };
        Ok(Paths {
            key: dir.join(KEY_FILE),
            public: dir.join(format!("{KEY_FILE}.pub")),
            known_hosts: dir.join(KNOWN_HOSTS_FILE),
            dir,
        })
    }

    fn key_exists(&self) -> bool {
        self.key.exists()
    }

    /// The public key: from the `.pub` file, or recovered from the private key when it is lost.
    fn read_public(&self) -> Result<SshPublicKey> {
        if !self.key_exists() {
            bail!(
                "no docksh key at {}: run `docksh setup` first",
                self.key.display()
            );
        }
        match fs::read_to_string(&self.public) {
            Ok(text) => Ok(cm_core::KeyParser::parse(&cm_ssh::Ed25519KeyParser, &text)
                .with_context(|| format!("reading {}", self.public.display()))?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let private = fs::read_to_string(&self.key)
                    .with_context(|| format!("reading {}", self.key.display()))?;
                Ok(cm_ssh::public_key_from_private(&private)
                    .with_context(|| format!("reading {}", self.key.display()))?)
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", self.public.display())),
        }
    }
}

fn setup(force: bool) -> Result<()> {
    let paths = Paths::new()?;
    if paths.key_exists() && !force {
        let public = paths.read_public()?;
        if !paths.public.exists() {
            write_atomically(&paths.public, &format!("{}\n", public.line()), 0o644)?;
        }
        let _ = writeln!(
            io::stderr(),
            "docksh: a key already exists at {} (use `docksh setup --force` to replace it)",
            paths.key.display()
        );
        return print_instructions(&public);
    }
    create_private_dir(&paths.dir)?;
    let generated = cm_ssh::generate_keypair(&key_comment())?;
    write_atomically(&paths.key, generated.private_openssh(), 0o600)?;
    write_atomically(&paths.public, &format!("{}\n", generated.public_line()), 0o644)?;
    let mut out = io::stdout().lock();
    writeln!(out, "Created your docksh key: {}", paths.key.display())?;
    if force {
        writeln!(
            out,
            "The previous key was replaced: ask your admin to add the new line and to remove the old key."
        )?;
    }
    drop(out);
    print_instructions(generated.public_key())
}

fn show() -> Result<()> {
    let public = Paths::new()?.read_public()?;
    writeln!(io::stdout().lock(), "{}", public.line())?;
    Ok(())
}

fn print_instructions(public: &SshPublicKey) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "\nSend exactly this one line to your admin (it is your public key, safe to share):\n"
    )?;
    writeln!(out, "{}\n", public.line())?;
    writeln!(out, "Fingerprint: {}", public.fingerprint())?;
    writeln!(
        out,
        "Your admin adds it with:  cm add-ssh-key <container> \"<the line above>\""
    )?;
    writeln!(out, "Then connect with:        docksh connect <server> <port>")?;
    Ok(())
}

fn connect(host: &str, port: &str, ssh_args: &[OsString]) -> Result<ExitCode> {
    let host = parse_host(host)?;
    let port = parse_port(port)?;
    let paths = Paths::new()?;
    if !paths.key_exists() {
        bail!(
            "no docksh key at {}: run `docksh setup` first",
            paths.key.display()
        );
    }
    let ssh = find_in_path("ssh").ok_or_else(|| anyhow!("ssh is not installed: install openssh-client"))?;

    let mut command = Command::new(ssh);
    command
        .arg("-i")
        .arg(&paths.key)
        .args(["-o", "IdentitiesOnly=yes", "-o"])
        .arg(option_with_path("UserKnownHostsFile", &paths.known_hosts)?)
        .args(["-o", "StrictHostKeyChecking=accept-new", "-t", "-p"])
        .arg(port.to_string())
        .arg(format!("{SSH_USER}@{host}"))
        .args(ssh_args);
    run(command)
}

/// Replaces this process with ssh, so its exit code, signals and terminal are ssh's own.
#[cfg(unix)]
fn run(mut command: Command) -> Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let err = command.exec();
    Err(err).context("starting ssh")
}

/// Runs ssh and passes its exit code on.
#[cfg(not(unix))]
fn run(mut command: Command) -> Result<ExitCode> {
    let status = command.status().context("starting ssh")?;
    let code = status.code().unwrap_or(255);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// A host name or an IP address (IPv6 with or without brackets), nothing ssh could read as an
/// option or a second destination.
fn parse_host(raw: &str) -> Result<String> {
    let host = raw
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(raw);
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-:".contains(c);
    if host.is_empty() || host.len() > 253 || host.starts_with(['-', '.']) || !host.chars().all(allowed) {
        return Err(Usage(format!(
            "invalid host {}: use a host name or an IP address (letters, digits, . - :)",
            shown(raw)
        ))
        .into());
    }
    Ok(host.to_owned())
}

fn parse_port(raw: &str) -> Result<u16> {
    match raw.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(Usage(format!(
            "invalid port {}: use a number from 1 to 65535",
            shown(raw)
        ))
        .into()),
    }
}

/// Quotes user input for a message only when it is short and plainly printable.
fn shown(raw: &str) -> String {
    let printable = raw.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    if !raw.is_empty() && raw.len() <= 64 && printable {
        format!("`{raw}`")
    } else {
        "(not shown)".to_owned()
    }
}

/// `Name=path` for `ssh -o`; ssh splits option values on whitespace, so such paths get quotes.
fn option_with_path(name: &str, path: &Path) -> Result<String> {
    let path = path
        .to_str()
        .ok_or_else(|| anyhow!("the path {} is not valid utf-8", path.display()))?;
    if path.contains('"') {
        bail!("the path {path} contains a double quote, which ssh can not read");
    }
    if path.contains(char::is_whitespace) {
        Ok(format!("{name}=\"{path}\""))
    } else {
        Ok(format!("{name}={path}"))
    }
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let file = format!("{program}{}", std::env::consts::EXE_SUFFIX);
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(&file))
        .find(|candidate| candidate.is_file())
}

/// `docksh@<hostname>` in the comment charset, or `docksh@<user>` when the host name is unknown.
fn key_comment() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| fs::read_to_string("/etc/hostname").ok())
        .or_else(|| {
            let output = Command::new("hostname").output().ok()?;
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
        })
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    cm_ssh::safe_comment(&format!("docksh@{host}"))
}

/// Creates the key directory, mode 700, when it does not exist yet; an existing one is left alone.
fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Writes `text` to a new temporary file with `mode`, then renames it over `path`, so a crash
/// never leaves a half-written key and the mode holds from the first byte.
fn write_atomically(path: &Path, text: &str, mode: u32) -> Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
    let mut temp_name = OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = path.with_file_name(temp_name);

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options
        .open(&temp)
        .and_then(|mut file| {
            // The exact mode, whatever the umask took away at creation.
            #[cfg(unix)]
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}
