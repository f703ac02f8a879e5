//! `two_commands_at_once`: a teacher edits an acuerdo in `$EDITOR` and, while the editor is
//! open, records another acuerdo from a second terminal. Both `bitacora` processes write as the
//! laptop's actor; the edit must be saved on top of what the other command saved, not on the
//! state it loaded before opening the editor (that change would reuse the other's sequence
//! number, and the school's document would no longer load: every later command would fail with
//! "documento dañado"). Regression test for that bug (issue 6, found by `crash_rounds`' design).
//!
//! The editor is a shell script that blocks on a named pipe, so the test decides exactly when
//! it saves: no sleeps, every step waits for a process or a pipe.

use std::io::{Read, Write};
use std::process::Stdio;

use anyhow::{Context, Result, ensure};
use bitacora_tests::Replica;
use serde_json::Value;

const CCT: &str = "07DPR0123X";

fn mkfifo(path: &std::path::Path) -> Result<()> {
    let st = std::process::Command::new("mkfifo").arg(path).status()?;
    ensure!(st.success(), "mkfifo {}", path.display());
    Ok(())
}

#[test]
fn two_commands_at_once() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let r = Replica::new(tmp.path().join("laptop"));
    r.ok(&[
        "init",
        "--cct",
        CCT,
        "--nombre",
        "Escuela",
        "--zona",
        "07FIZ0014",
        "--ciclo",
        "2025-2026",
        "--autor",
        "Mtra. Ana",
    ])?;
    let add = |texto: &str| -> Result<String> {
        let v = r.json(&["acuerdo", "add", "--texto", texto])?;
        Ok(v["id"].as_str().context("id")?.to_string())
    };
    let primero = add("Revisar la asistencia los viernes")?;

    // The editor: says it is open (a line on `abierto`), waits for the go-ahead on `seguir`,
    // then saves the new text.
    let abierto = tmp.path().join("abierto");
    let seguir = tmp.path().join("seguir");
    mkfifo(&abierto)?;
    mkfifo(&seguir)?;
    let script = tmp.path().join("editor.sh");
    std::fs::write(
        &script,
        format!(
            "echo abierto > '{}'\nread x < '{}'\nprintf 'Revisar la asistencia los lunes' > \"$1\"\n",
            abierto.display(),
            seguir.display()
        ),
    )?;
    let mut editar = r.command(&["acuerdo", "edit", &primero]);
    editar
        .env("EDITOR", format!("sh {}", script.display()))
        .env_remove("VISUAL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let editar = editar.spawn()?;
    // Wait until the editor is open (the command has loaded the document).
    let mut linea = String::new();
    std::fs::File::open(&abierto)?.read_to_string(&mut linea)?;
    ensure!(linea.trim() == "abierto", "{linea:?}");

    // Meanwhile, another command records an acuerdo and finishes.
    let segundo = add("Invitar a las familias a la lectura")?;

    // The editor saves; the edit command finishes.
    writeln!(
        std::fs::OpenOptions::new().write(true).open(&seguir)?,
        "sigue"
    )?;
    let out = editar.wait_with_output()?;
    ensure!(
        out.status.success(),
        "acuerdo edit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The document still loads, with both commands' work.
    let lista: Value = r.json(&["acuerdo", "list"])?;
    let texto = |id: &str| {
        lista
            .as_array()
            .and_then(|l| l.iter().find(|a| a["id"] == id))
            .map(|a| a["texto"].clone())
    };
    ensure!(
        texto(&primero) == Some("Revisar la asistencia los lunes".into()),
        "the edit is saved: {lista}"
    );
    ensure!(
        texto(&segundo) == Some("Invitar a las familias a la lectura".into()),
        "the other command's acuerdo is kept: {lista}"
    );
    ensure!(
        r.hashes()?.len() == 5,
        "genesis, registro, two adds and the edit"
    );
    Ok(())
}
