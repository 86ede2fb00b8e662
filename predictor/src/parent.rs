//! Dying with the supervisor: when `kiln up` starts a predictor it sets `KILN_PARENT_PID`.
//! The predictor then asks the kernel for SIGKILL when its parent dies
//! (`PR_SET_PDEATHSIG`), and exits at once if the parent is already gone, so no predictor
//! outlives even a `kill -9` of `kiln up`. The setting survives the hand-off `exec` to
//! `kiln-predictor-torch`.

/// The variable a supervisor sets to its own PID.
pub const PARENT_PID_VAR: &str = "KILN_PARENT_PID";

/// Follows the parent named by `KILN_PARENT_PID`, if any. Returns an error message when the
/// parent is already gone or the kernel refuses.
pub fn follow_parent() -> Result<(), String> {
    let Some(value) = std::env::var_os(PARENT_PID_VAR) else {
        return Ok(());
    };
    let expected: i32 = value
        .to_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{PARENT_PID_VAR} is not a process id"))?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("cannot ask for a parent-death signal: {e}"))?;
    let parent = nix::unistd::getppid().as_raw();
    if parent != expected {
        return Err(format!(
            "the supervisor (pid {expected}) is gone (parent is now {parent}); exiting"
        ));
    }
    Ok(())
}
