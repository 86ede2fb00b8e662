//! A predictor started by a supervisor (`KILN_PARENT_PID`) dies with it, even when the
//! supervisor is killed with SIGKILL.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fixtures, is_running};

#[test]
fn a_predictor_dies_when_its_supervisor_is_killed() {
    let model = fixtures().join("mlp");
    let script = format!(
        "KILN_PARENT_PID=$$ '{}' predictor --model-name mlp --storage-uri '{}' --bind 127.0.0.1 \
         --http-port 0 --grpc-port 0 >/dev/null 2>&1 & echo $!; wait",
        env!("CARGO_BIN_EXE_kiln"),
        model.display()
    );
    let mut supervisor = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(supervisor.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let predictor: i32 = line.trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_running(predictor) {
        assert!(Instant::now() < deadline, "predictor never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        is_running(predictor),
        "predictor should run while its supervisor lives"
    );
    supervisor.kill().unwrap(); // SIGKILL: no chance to clean up
    supervisor.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while is_running(predictor) {
        assert!(
            Instant::now() < deadline,
            "predictor {predictor} outlived its supervisor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
