//! The systemd cgroup driver's D-Bus side: transient slices and scopes through systemd's
//! manager (`org.freedesktop.systemd1`), with zbus's blocking API. Each call opens its own
//! connection to the system bus and closes it, so neither berthd nor a shim keeps a bus thread.
//!
//! A job systemd queues (start, stop) is waited for by watching what it does to the unit: a
//! started scope's cgroup appears, a stopped unit leaves `active`.

use std::path::Path;
use std::time::{Duration, Instant};

use zbus::blocking::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value as ZValue};

use super::CgroupError;
use super::fs::Result;
use super::unit_props::{Property, Value};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
/// How long a start or stop job may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(20);
/// The description berth gives the slices it starts, so it stops only those (kubelet's own pod
/// slices stay kubelet's).
pub const SLICE_DESCRIPTION: &str = "berth pod slice";

/// Whether systemd runs this host (what `sd_booted()` checks).
pub fn booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn failed(unit: &str, action: &'static str, message: impl ToString) -> CgroupError {
    CgroupError::Systemd {
        unit: unit.to_string(),
        action,
        message: message.to_string(),
    }
}

fn connect(unit: &str, action: &'static str) -> Result<Connection> {
    Connection::system()
        .map_err(|e| failed(unit, action, format!("connect to the system bus: {e}")))
}

fn to_value(v: &Value) -> ZValue<'_> {
    match v {
        Value::U64(n) => ZValue::U64(*n),
        Value::Bool(b) => ZValue::Bool(*b),
        Value::Str(s) => ZValue::from(s.as_str()),
        Value::Bytes(b) => ZValue::from(b.clone()),
        Value::U32s(v) => ZValue::from(v.clone()),
    }
}

fn method_error_name(e: &zbus::Error) -> Option<&str> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

/// `StartTransientUnit(name, "fail", props, [])`. A unit that already exists is `Ok(false)`.
fn start_transient(conn: &Connection, name: &str, props: &[Property]) -> Result<bool> {
    let props: Vec<(&str, ZValue<'_>)> = props.iter().map(|(k, v)| (*k, to_value(v))).collect();
    let aux: Vec<(&str, Vec<(&str, ZValue<'_>)>)> = Vec::new();
    let reply = conn.call_method(
        Some(DEST),
        PATH,
        Some(MANAGER),
        "StartTransientUnit",
        &(name, "fail", props, aux),
    );
    match reply {
        Ok(_) => Ok(true),
        Err(e) if method_error_name(&e) == Some("org.freedesktop.systemd1.UnitExists") => Ok(false),
        Err(e) => Err(failed(name, "start", e)),
    }
}

/// A property of a loaded unit; `None` when systemd has no such unit loaded.
fn unit_property(conn: &Connection, name: &str, property: &str) -> Result<Option<OwnedValue>> {
    let path = match conn.call_method(Some(DEST), PATH, Some(MANAGER), "GetUnit", &(name,)) {
        Ok(reply) => reply
            .body()
            .deserialize::<OwnedObjectPath>()
            .map_err(|e| failed(name, "look up", e))?,
        Err(e) if method_error_name(&e) == Some("org.freedesktop.systemd1.NoSuchUnit") => {
            return Ok(None);
        }
        Err(e) => return Err(failed(name, "look up", e)),
    };
    let reply = conn
        .call_method(
            Some(DEST),
            path.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(UNIT, property),
        )
        .map_err(|e| failed(name, "read a property of", e))?;
    let value = reply
        .body()
        .deserialize::<OwnedValue>()
        .map_err(|e| failed(name, "read a property of", e))?;
    Ok(Some(value))
}

fn string_property(conn: &Connection, name: &str, property: &str) -> Result<Option<String>> {
    Ok(unit_property(conn, name, property)?.and_then(|v| String::try_from(v).ok()))
}

/// Polls `done` until it holds or the job timeout passes.
fn wait(unit: &str, what: &'static str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + JOB_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    while !done()? {
        if Instant::now() >= deadline {
            return Err(CgroupError::Timeout {
                cgroup: unit.to_string(),
                what,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    Ok(())
}

/// Starts slice `name` unless it is active already (kubelet made it, or another container of the
/// pod did). A slice berth starts carries [`SLICE_DESCRIPTION`].
pub fn ensure_slice(name: &str) -> Result<()> {
    if name == "-.slice" {
        return Ok(());
    }
    let conn = connect(name, "start")?;
    if string_property(&conn, name, "ActiveState")?.as_deref() == Some("active") {
        return Ok(());
    }
    let props = [("Description", Value::Str(SLICE_DESCRIPTION.to_string()))];
    start_transient(&conn, name, &props)?;
    wait(name, "waiting for the slice to start", || {
        Ok(string_property(&conn, name, "ActiveState")?.as_deref() == Some("active"))
    })
}

/// Stops slice `name` if berth started it (and it is still loaded); kubelet's slices are left.
pub fn release_slice(name: &str) -> Result<()> {
    let conn = connect(name, "stop")?;
    if string_property(&conn, name, "Description")?.as_deref() != Some(SLICE_DESCRIPTION) {
        return Ok(());
    }
    stop_unit(&conn, name)
}

/// Starts scope `scope` in `slice` holding `pid`, delegated (`Delegate=yes`: berth may write
/// the cgroup's other files), with `props`; returns once it is active (its cgroup `dir` made).
pub fn start_scope(
    scope: &str,
    slice: &str,
    pid: u32,
    props: &[Property],
    dir: &Path,
) -> Result<()> {
    let conn = connect(scope, "start")?;
    let mut all: Vec<Property> = vec![
        (
            "Description",
            Value::Str(format!("berth container {scope}")),
        ),
        ("Slice", Value::Str(slice.to_string())),
        ("Delegate", Value::Bool(true)),
        ("PIDs", Value::U32s(vec![pid])),
        // The container's processes are killed by berth (and the shim); systemd need not wait.
        ("DefaultDependencies", Value::Bool(false)),
    ];
    all.extend(props.iter().cloned());
    if !start_transient(&conn, scope, &all)? {
        return Err(failed(scope, "start", "a unit of that name exists already"));
    }
    // Active once systemd has made the cgroup, applied the unit's settings to it (which rewrites
    // files such as `memory.oom.group`) and moved the process in: only then are berth's own
    // writes into it safe from being overwritten.
    wait(scope, "waiting for the scope to start", || {
        Ok(dir.join("cgroup.procs").exists()
            && string_property(&conn, scope, "ActiveState")?.as_deref() == Some("active"))
    })
}

/// Sets properties of a running unit (`SetUnitProperties`, runtime only).
pub fn set_properties(name: &str, props: &[Property]) -> Result<()> {
    if props.is_empty() {
        return Ok(());
    }
    let conn = connect(name, "set properties of")?;
    let props: Vec<(&str, ZValue<'_>)> = props.iter().map(|(k, v)| (*k, to_value(v))).collect();
    conn.call_method(
        Some(DEST),
        PATH,
        Some(MANAGER),
        "SetUnitProperties",
        &(name, true, props),
    )
    .map_err(|e| failed(name, "set properties of", e))?;
    Ok(())
}

/// Stops unit `name` and waits until it is no longer active; a unit systemd does not know (an
/// empty scope is gone by itself) is fine.
pub fn stop(name: &str) -> Result<()> {
    let conn = connect(name, "stop")?;
    stop_unit(&conn, name)
}

fn stop_unit(conn: &Connection, name: &str) -> Result<()> {
    match conn.call_method(
        Some(DEST),
        PATH,
        Some(MANAGER),
        "StopUnit",
        &(name, "replace"),
    ) {
        Ok(_) => {}
        Err(e) if method_error_name(&e) == Some("org.freedesktop.systemd1.NoSuchUnit") => {
            return Ok(());
        }
        Err(e) => return Err(failed(name, "stop", e)),
    }
    wait(name, "waiting for the unit to stop", || {
        let state = string_property(conn, name, "ActiveState")?;
        Ok(!matches!(
            state.as_deref(),
            Some("active" | "deactivating" | "reloading")
        ))
    })
}
