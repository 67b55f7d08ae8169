//! Lease owners on this machine: who we are, and whether a recorded owner
//! is a process that no longer exists (so its lease can be taken at once
//! instead of waiting for it to expire).

use std::sync::OnceLock;

/// This process as a lease owner: `HOST:PID:START`, where START is the
/// process's start time in clock ticks since boot (Linux), which tells a
/// reused pid from the original.
pub fn local_owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| {
        let pid = std::process::id();
        format!(
            "{}:{pid}:{}",
            hostname(),
            start_ticks(pid).unwrap_or_default()
        )
    })
}

/// Whether `owner` (as [`local_owner`] writes it) is a process on this
/// machine that is gone. Owners on other machines, or in another form, are
/// never reported dead: their leases expire instead.
pub fn is_dead_local_owner(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    if host != hostname() || !cfg!(target_os = "linux") || start == 0 {
        return false;
    }
    if pid == std::process::id() {
        return false;
    }
    start_ticks(pid) != Some(start)
}

fn hostname() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().replace(':', "_"))
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    })
    .clone()
}

/// Field 22 of `/proc/PID/stat`: the start time in clock ticks since boot.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_foreign_owners_are_not_judged() {
        let me = local_owner();
        assert!(!is_dead_local_owner(me));
        assert!(!is_dead_local_owner("other-host:1:1"));
        assert!(!is_dead_local_owner("worker-7"));
        assert!(!is_dead_local_owner(""));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_finished_process_is_dead() {
        let Ok(mut child) = std::process::Command::new("true").spawn() else {
            return;
        };
        let pid = child.id();
        let start = start_ticks(pid);
        let _ = child.wait();
        if let Some(start) = start {
            assert!(is_dead_local_owner(&format!(
                "{}:{pid}:{start}",
                hostname()
            )));
        }
    }
}
