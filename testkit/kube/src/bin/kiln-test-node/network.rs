//! The node's network: a bridge `kbr<pid>` with `10.244.X.1/24` (the first X no interface of
//! the machine uses), and per Pod a network namespace `kiln-<pid>-<n>` with one end of a veth
//! pair (`eth0`, `10.244.X.<k>/24`) whose other end is on the bridge.
//!
//! Pods get no default route: they reach the node and each other, never beyond the machine.
//! What a killed node leaves behind (its bridge and namespaces, named by its pid, and its claim
//! on the range) is removed or taken over by the next node that starts.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::Result;

/// Runs `ip ARGS`; an error carries ip's own message.
async fn ip(args: &[&str]) -> Result<String> {
    let output = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if !output.status.success() {
        return Err(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn gone(pid: &str) -> bool {
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && !Path::new("/proc").join(pid).exists()
}

/// Where nodes claim their `10.244.X.0/24`: a file per X holding the owner's pid. Two nodes
/// starting at once both see a range unused by any interface; only one creates its file.
fn claims() -> PathBuf {
    std::env::temp_dir().join("kiln-test-node-subnets")
}

/// Claims `10.244.x.0/24` for process `pid`, taking it over from a node that is gone.
fn claim(x: u8, pid: u32) -> bool {
    let dir = claims();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(x.to_string());
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => return file.write_all(pid.to_string().as_bytes()).is_ok(),
            Err(_) => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                // An empty file may be a claim being written: leave it.
                if !gone(owner.trim()) {
                    return false;
                }
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    false
}

/// Removes the bridges and namespaces of nodes that are gone.
pub(crate) async fn sweep() {
    if let Ok(list) = ip(&["netns", "list"]).await {
        for line in list.lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if let Some(rest) = name.strip_prefix("kiln-")
                && gone(rest.split('-').next().unwrap_or_default())
            {
                tracing::info!(
                    netns = name,
                    "removing a namespace left by a node that is gone"
                );
                let _ = ip(&["netns", "del", name]).await;
            }
        }
    }
    if let Ok(list) = ip(&["-o", "link", "show", "type", "bridge"]).await {
        for line in list.lines() {
            // "12: kbr123: <BROADCAST,...> ..."
            let name = line.split(':').nth(1).unwrap_or_default().trim();
            if let Some(pid) = name.strip_prefix("kbr")
                && gone(pid)
            {
                tracing::info!(
                    bridge = name,
                    "removing a bridge left by a node that is gone"
                );
                let _ = ip(&["link", "del", name]).await;
            }
        }
    }
}

/// The node's bridge and the addresses it hands out.
#[derive(Debug)]
pub(crate) struct Network {
    bridge: String,
    subnet: [u8; 3],
    pid: u32,
    state: Mutex<Allocations>,
}

#[derive(Debug, Default)]
struct Allocations {
    used: BTreeSet<u8>,
    /// The host part handed out last.
    last: Option<u8>,
    namespaces: u32,
}

/// One Pod's namespace and address.
#[derive(Debug, Clone)]
pub(crate) struct PodNetwork {
    pub(crate) netns: String,
    pub(crate) ip: Ipv4Addr,
    /// The veth end on the bridge.
    veth: String,
}

/// Every node's Pod range lies in this one, which the host never routes beyond itself.
pub(crate) const POD_RANGE: &str = "10.244.0.0/16";

impl Network {
    /// Makes the bridge on the first free `10.244.X.0/24`.
    pub(crate) async fn create() -> Result<Self> {
        let pid = std::process::id();
        let addresses = ip(&["-o", "-4", "addr", "show"]).await?;
        let used: BTreeSet<u8> = addresses
            .split_whitespace()
            .filter_map(|word| word.strip_prefix("10.244."))
            .filter_map(|rest| rest.split('.').next()?.parse().ok())
            .collect();
        let x = (1..=254u8)
            .find(|x| !used.contains(x) && claim(*x, pid))
            .ok_or("every 10.244.X.0/24 is in use")?;
        let network = Self {
            bridge: format!("kbr{pid}"),
            subnet: [10, 244, x],
            pid,
            state: Mutex::new(Allocations::default()),
        };
        let gateway = format!("{}/24", network.gateway());
        // Traffic to a Pod range whose bridge is gone must fail here, never leave the machine
        // by the default route: the whole 10.244.0.0/16 is unreachable but for the /24s of
        // live bridges (more specific routes win). Kept after the node stops, on purpose.
        ip(&["route", "replace", "unreachable", POD_RANGE]).await?;
        ip(&["link", "add", "name", &network.bridge, "type", "bridge"]).await?;
        ip(&["addr", "add", &gateway, "dev", &network.bridge]).await?;
        ip(&["link", "set", &network.bridge, "up"]).await?;
        Ok(network)
    }

    /// The node's own address on the bridge.
    pub(crate) fn gateway(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// The Pods' range, `10.244.X.0/24`.
    pub(crate) fn cidr(&self) -> String {
        let [a, b, c] = self.subnet;
        format!("{a}.{b}.{c}.0/24")
    }

    /// A namespace with an address for one Pod.
    pub(crate) async fn attach(&self) -> Result<PodNetwork> {
        let (n, host) = {
            let mut state = self.state.lock();
            // Round the range rather than take the lowest free address: a fresh Pod on the
            // address of one just removed would meet the old one's MAC in neighbour caches.
            // Host parts 2..=254, starting after the last one handed out.
            let start = state.last.map_or(0, |last| u16::from(last) - 1);
            let host = (0..253u16)
                .map(|i| (2 + (start + i) % 253) as u8)
                .find(|h| !state.used.contains(h))
                .ok_or("the node's 253 Pod addresses are all in use")?;
            state.used.insert(host);
            state.last = Some(host);
            state.namespaces += 1;
            (state.namespaces, host)
        };
        let [a, b, c] = self.subnet;
        let pod = PodNetwork {
            netns: format!("kiln-{}-{n}", self.pid),
            ip: Ipv4Addr::new(a, b, c, host),
            veth: format!("kv{}x{n}", self.pid),
        };
        if let Err(error) = self.plumb(&pod, n).await {
            self.detach(&pod).await;
            return Err(error);
        }
        Ok(pod)
    }

    async fn plumb(&self, pod: &PodNetwork, n: u32) -> Result<()> {
        let outside = pod.veth.as_str();
        let inside = format!("kp{}x{n}", self.pid);
        let address = format!("{}/24", pod.ip);
        let ns = pod.netns.as_str();
        ip(&["netns", "add", ns]).await?;
        ip(&[
            "link", "add", outside, "type", "veth", "peer", "name", &inside,
        ])
        .await?;
        ip(&["link", "set", &inside, "netns", ns]).await?;
        ip(&["link", "set", outside, "master", &self.bridge, "up"]).await?;
        ip(&["-n", ns, "link", "set", &inside, "name", "eth0"]).await?;
        ip(&["-n", ns, "addr", "add", &address, "dev", "eth0"]).await?;
        ip(&["-n", ns, "link", "set", "eth0", "up"]).await?;
        ip(&["-n", ns, "link", "set", "lo", "up"]).await?;
        Ok(())
    }

    /// Removes a Pod's namespace (its veth pair goes with it) and frees its address.
    pub(crate) async fn detach(&self, pod: &PodNetwork) {
        if let Err(error) = ip(&["netns", "del", &pod.netns]).await {
            tracing::warn!(netns = pod.netns, %error, "removing the namespace");
        }
        // Gone with the namespace once no process holds it; this is a safety net.
        let _ = ip(&["link", "del", &pod.veth]).await;
        let _ = ip(&[
            "neigh",
            "flush",
            "to",
            &pod.ip.to_string(),
            "dev",
            &self.bridge,
        ])
        .await;
        self.state.lock().used.remove(&pod.ip.octets()[3]);
    }

    /// Removes the bridge, and gives its range back.
    pub(crate) async fn remove(&self) {
        if let Err(error) = ip(&["link", "del", &self.bridge]).await {
            tracing::warn!(bridge = self.bridge, %error, "removing the bridge");
        }
        let _ = std::fs::remove_file(claims().join(self.subnet[2].to_string()));
    }
}
