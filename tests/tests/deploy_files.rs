//! `deploy_files`: docker-compose.yml and the Dockerfile, checked by their structure because no
//! container engine runs in CI (docs/operations.md, "Containers", says what was not run).
//!
//! The compose file must run `servidor` on `postgres` 16 with healthchecks on both, the server
//! waiting for a healthy database, data in named volumes, secrets only as required `${…}`
//! references (no default, no literal), every `BITACORA_*` variable a real configuration key,
//! the sync port published and the metrics port on the host's loopback only. The Dockerfile
//! must build the release binary in a build stage and run only that binary, as a non-root user,
//! as `bitacora-server serve --listen 0.0.0.0:8787`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde_yaml_ng::Value;

fn raiz() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

fn leer(nombre: &str) -> Result<String> {
    let p = raiz().join(nombre);
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

fn compose() -> Result<Value> {
    serde_yaml_ng::from_str(&leer("docker-compose.yml")?).context("docker-compose.yml is YAML")
}

fn texto(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list of strings (`["CMD", …]`) or one string, as words.
fn palabras(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(s) => s.iter().filter_map(texto).collect(),
        other => texto(other)
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
    }
}

/// `environment:` as pairs, in either of compose's two forms.
fn entorno(servicio: &Value) -> Vec<(String, String)> {
    match &servicio["environment"] {
        Value::Mapping(m) => m
            .iter()
            .filter_map(|(k, v)| Some((texto(k)?, texto(v).unwrap_or_default())))
            .collect(),
        Value::Sequence(s) => s
            .iter()
            .filter_map(texto)
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e, String::new()),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Every `${…}` reference in a value: (name, what follows the name).
fn referencias(valor: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut resto = valor;
    while let Some(i) = resto.find("${") {
        let tras = &resto[i + 2..];
        let Some(fin) = tras.find('}') else { break };
        let cuerpo = &tras[..fin];
        let n = cuerpo
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(cuerpo.len());
        out.push((cuerpo[..n].to_string(), cuerpo[n..].to_string()));
        resto = &tras[fin + 1..];
    }
    out
}

#[test]
fn compose_services_volumes_health_and_order() -> Result<()> {
    let c = compose()?;
    let servicios = c["services"].as_mapping().context("services")?;
    let mut nombres: Vec<String> = servicios.keys().filter_map(texto).collect();
    nombres.sort();
    assert_eq!(nombres, ["postgres", "servidor"], "exactly these services");

    let pg = &c["services"]["postgres"];
    let imagen = pg["image"].as_str().context("postgres.image")?;
    ensure!(
        imagen.starts_with("postgres:16"),
        "PostgreSQL 16, got {imagen}"
    );

    let srv = &c["services"]["servidor"];
    let build = match &srv["build"] {
        Value::String(s) => s.clone(),
        b => b["context"].as_str().unwrap_or_default().to_string(),
    };
    assert_eq!(
        build, ".",
        "the server is built from the repository's Dockerfile"
    );
    assert_eq!(
        srv["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy"),
        "the server starts once PostgreSQL is healthy"
    );

    // Healthchecks: PostgreSQL's own tool, and the server's `salud` probe of /readyz.
    let pg_check = palabras(&pg["healthcheck"]["test"]);
    ensure!(
        pg_check.iter().any(|w| w.contains("pg_isready")),
        "postgres healthcheck: {pg_check:?}"
    );
    let srv_check = palabras(&srv["healthcheck"]["test"]);
    ensure!(
        srv_check.first().map(String::as_str) == Some("CMD")
            && srv_check.iter().any(|w| w.ends_with("bitacora-server"))
            && srv_check.iter().any(|w| w == "salud"),
        "servidor healthcheck runs `bitacora-server salud`: {srv_check:?}"
    );

    // Named volumes, declared at the top level, for both services' data.
    let declarados: Vec<String> = c["volumes"]
        .as_mapping()
        .context("top-level volumes")?
        .keys()
        .filter_map(texto)
        .collect();
    for (servicio, destino) in [
        ("postgres", "/var/lib/postgresql/data"),
        ("servidor", "/var/lib/bitacora"),
    ] {
        let montajes = palabras(&c["services"][servicio]["volumes"]);
        let m = montajes
            .iter()
            .find(|m| m.ends_with(&format!(":{destino}")))
            .with_context(|| format!("{servicio} mounts {destino}: {montajes:?}"))?;
        let fuente = m.split(':').next().unwrap_or_default();
        ensure!(
            declarados.iter().any(|d| d == fuente),
            "{servicio}: {fuente} is a named volume (declared: {declarados:?})"
        );
    }

    // The server runs `serve` on all interfaces of its container.
    let cmd = palabras(&srv["command"]);
    assert_eq!(cmd, ["serve", "--listen", "0.0.0.0:8787"]);
    Ok(())
}

#[test]
fn compose_secrets_come_from_the_environment() -> Result<()> {
    let texto_compose = leer("docker-compose.yml")?;
    let c = compose()?;
    // No variable anywhere has a default: a missing secret stops compose instead of starting
    // with a value everyone can read in this repository.
    for (nombre, resto) in referencias(&texto_compose) {
        ensure!(
            !resto.starts_with(":-") && !resto.starts_with('-'),
            "${{{nombre}{resto}}} has a default"
        );
    }
    let mut requeridos = Vec::new();
    for servicio in ["postgres", "servidor"] {
        for (k, v) in entorno(&c["services"][servicio]) {
            let secreto =
                k.contains("PASSWORD") || k.contains("SECRET") || k.contains("DATABASE_URL");
            if !secreto {
                continue;
            }
            let refs = referencias(&v);
            ensure!(
                !refs.is_empty(),
                "{servicio}: {k} must come from the environment, not be written here"
            );
            if k.contains("DATABASE_URL") {
                // postgres://user:${PASSWORD…}@host/db: the password part is a reference.
                let cred = v
                    .split_once("://")
                    .and_then(|(_, r)| r.split_once('@'))
                    .map(|(c, _)| c)
                    .context("the database URL has credentials")?;
                let clave = cred.split_once(':').map(|(_, p)| p).unwrap_or_default();
                ensure!(
                    clave.starts_with("${") && clave.ends_with('}'),
                    "{servicio}: the password in {k} is a reference, got «{clave}»"
                );
            } else {
                ensure!(
                    v.starts_with("${") && v.ends_with('}') && refs.len() == 1,
                    "{servicio}: {k} is exactly one reference, got «{v}»"
                );
            }
            for (n, resto) in refs {
                ensure!(
                    resto.starts_with(":?"),
                    "{servicio}: ${{{n}}} in {k} must be required (`${{{n}:?…}}`)"
                );
                requeridos.push(n);
            }
        }
    }
    requeridos.sort();
    requeridos.dedup();
    assert_eq!(requeridos, ["BITACORA_JWT_SECRET", "POSTGRES_PASSWORD"]);
    let srv_env = entorno(&c["services"]["servidor"]);
    for k in ["BITACORA_JWT__SECRET", "BITACORA_DATABASE_URL"] {
        ensure!(srv_env.iter().any(|(n, _)| n == k), "the server gets {k}");
    }
    Ok(())
}

/// Every `BITACORA_*` variable of the compose file and the Dockerfile names a configuration key
/// (figment maps `BITACORA_A__B` to `a.b`), so a typo does not silently do nothing.
#[test]
fn environment_variables_are_configuration_keys() -> Result<()> {
    let c = compose()?;
    let defaults = serde_json::to_value(bitacora_server::config::Config::default())?;
    let mut nombres: Vec<String> = entorno(&c["services"]["servidor"])
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for linea in leer("Dockerfile")?.lines() {
        if let Some(resto) = linea.trim().strip_prefix("ENV ") {
            nombres.extend(
                resto
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string())),
            );
        }
    }
    let mut vistos = 0;
    for n in nombres {
        let Some(clave) = n.strip_prefix("BITACORA_") else {
            continue;
        };
        let mut v = &defaults;
        for parte in clave.to_ascii_lowercase().split("__") {
            v = v
                .get(parte)
                .with_context(|| format!("{n} is not a configuration key"))?;
        }
        vistos += 1;
    }
    ensure!(vistos >= 5, "the compose file configures the server");
    Ok(())
}

#[test]
fn compose_ports_keep_metrics_and_database_private() -> Result<()> {
    let c = compose()?;
    ensure!(
        c["services"]["postgres"]["ports"].is_null(),
        "PostgreSQL is not published"
    );
    let srv = &c["services"]["servidor"];
    let puertos = palabras(&srv["ports"]);
    ensure!(
        puertos.iter().any(|p| p == "8787:8787"),
        "the sync and dashboard port is published: {puertos:?}"
    );
    let env = entorno(srv);
    let metricas = env
        .iter()
        .find(|(k, _)| k == "BITACORA_METRICS_LISTEN")
        .map(|(_, v)| v.clone())
        .context("the server has a metrics listener")?;
    let puerto_metricas = metricas.rsplit(':').next().unwrap_or_default().to_string();
    ensure!(
        puerto_metricas != "8787",
        "metrics apart from the public port"
    );
    for p in &puertos {
        let partes: Vec<&str> = p.split(':').collect();
        let contenedor = partes.last().copied().unwrap_or_default();
        if contenedor.starts_with(&puerto_metricas) {
            ensure!(
                partes.len() == 3 && partes[0] == "127.0.0.1",
                "the metrics port is published on the host's loopback only, got {p}"
            );
        }
    }
    Ok(())
}

/// Instructions of a Dockerfile with their continuation lines joined, per stage.
fn etapas(dockerfile: &str) -> Vec<Vec<(String, String)>> {
    let mut logicas = Vec::new();
    let mut actual = String::new();
    for linea in dockerfile.lines() {
        let l = linea.trim();
        if l.starts_with('#') || (l.is_empty() && actual.is_empty()) {
            continue;
        }
        match l.strip_suffix('\\') {
            Some(parte) => {
                actual.push_str(parte);
                actual.push(' ');
            }
            None => {
                actual.push_str(l);
                logicas.push(std::mem::take(&mut actual));
            }
        }
    }
    let mut out: Vec<Vec<(String, String)>> = Vec::new();
    for l in logicas.into_iter().filter(|l| !l.is_empty()) {
        let (ins, args) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let ins = ins.to_ascii_uppercase();
        if ins == "FROM" {
            out.push(Vec::new());
        }
        if let Some(e) = out.last_mut() {
            e.push((ins, args.trim().to_string()));
        }
    }
    out
}

/// `["a", "b"]` or `a b` as words.
fn argumentos(s: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(s) {
        Ok(v) => v,
        Err(_) => s.split_whitespace().map(str::to_string).collect(),
    }
}

#[test]
fn dockerfile_builds_the_release_binary_and_runs_only_it() -> Result<()> {
    let etapas = etapas(&leer("Dockerfile")?);
    ensure!(etapas.len() >= 2, "a multi-stage build");
    let desde = |e: &Vec<(String, String)>| e[0].1.clone();
    let build = etapas
        .iter()
        .find(|e| desde(e).to_ascii_lowercase().ends_with(" as build"))
        .context("a stage named `build`")?;
    ensure!(
        desde(build).starts_with("rust:"),
        "built with the Rust image"
    );
    let compila = build.iter().any(|(i, a)| {
        let w = argumentos(a);
        i == "RUN"
            && w.windows(2).any(|p| p == ["cargo", "build"])
            && w.iter().any(|x| x == "--release")
            && w.windows(2).any(|p| p == ["-p", "bitacora-server"])
    });
    ensure!(
        compila,
        "the build stage runs cargo build --release -p bitacora-server"
    );

    let final_ = etapas.last().expect("at least two");
    ensure!(
        !desde(final_).to_ascii_lowercase().contains(" as build"),
        "the image that runs is not the build stage"
    );
    for (i, a) in final_ {
        match i.as_str() {
            "RUN" => bail!("the final image runs nothing at build time (binary only): RUN {a}"),
            "COPY" | "ADD" => ensure!(
                i == "COPY" && a.contains("--from=build"),
                "the final image takes only what the build stage made: {i} {a}"
            ),
            _ => {}
        }
    }
    let binarios: Vec<&String> = final_
        .iter()
        .filter(|(i, _)| i == "COPY")
        .map(|(_, a)| a)
        .filter(|a| a.contains("bitacora-server"))
        .collect();
    ensure!(binarios.len() == 1, "one binary copied: {binarios:?}");

    let usuario = final_
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.clone())
        .context("a USER in the final image")?;
    let nombre = usuario.split(':').next().unwrap_or_default();
    ensure!(
        !["", "root", "0"].contains(&nombre),
        "runs as a non-root user, got USER {usuario}"
    );

    let instr = |n: &str| {
        final_
            .iter()
            .rev()
            .find(|(i, _)| i == n)
            .map(|(_, a)| argumentos(a))
            .unwrap_or_default()
    };
    let mut orden = instr("ENTRYPOINT");
    orden.extend(instr("CMD"));
    ensure!(
        orden
            .first()
            .is_some_and(|b| b.ends_with("bitacora-server")),
        "runs the binary: {orden:?}"
    );
    assert_eq!(&orden[1..], ["serve", "--listen", "0.0.0.0:8787"]);

    let ignorados = leer(".dockerignore")?;
    ensure!(
        ignorados
            .lines()
            .any(|l| l.trim().trim_end_matches('/') == "target"),
        ".dockerignore keeps target/ out of the build context"
    );
    Ok(())
}
