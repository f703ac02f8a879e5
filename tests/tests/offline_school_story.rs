//! `offline_school_story`: two teachers of one school, each on their own laptop with no network,
//! initialise the school, plan and record; they edit the same acuerdo at the same time and set
//! its status to different values; bundles carried between the laptops merge everything into
//! one document where nothing is lost and the status conflict is visible and resolvable.

use anyhow::Result;
use bitacora_tests::Replica;
use serde_json::Value;

const CCT: &str = "07DPR0123X";

fn init(r: &Replica, autor: &str) -> Result<()> {
    r.ok(&[
        "init",
        "--cct",
        CCT,
        "--nombre",
        "Escuela Primaria Rural Benito Juárez",
        "--zona",
        "07FIZ0014",
        "--ciclo",
        "2025-2026",
        "--autor",
        autor,
    ])?;
    Ok(())
}

/// Carries every change of `from` to `to` through a bundle file.
fn carry(from: &Replica, to: &Replica, file: &std::path::Path) -> Result<()> {
    from.ok(&["bundle", "export", "--salida", file.to_str().unwrap()])?;
    to.ok(&["bundle", "import", file.to_str().unwrap()])?;
    Ok(())
}

fn id_of(out: &str) -> String {
    // "Acuerdo k3v9x0m2ab agregado." / "Objetivo … agregado." / "Meta … agregada …"
    out.split_whitespace().nth(1).expect("an id").to_string()
}

fn export(r: &Replica) -> Result<Value> {
    r.json(&["export", "json"])
}

#[test]
fn offline_school_story() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let ana = Replica::new(tmp.path().join("ana"));
    let luis = Replica::new(tmp.path().join("luis"));
    let usb = tmp.path().join("usb.bitacora");

    // Both laptops initialise the same school, offline, independently.
    init(&ana, "Mtra. Ana López")?;
    init(&luis, "Mtro. Luis Gómez")?;

    // Ana plans: objetivo, meta, acción.
    let obj = id_of(&ana.ok(&[
        "pemc",
        "objetivo",
        "add",
        "--texto",
        "Mejorar la comprensión lectora en todos los grados",
        "--para-que",
        "Que los alumnos aprendan en todas las asignaturas",
        "--ambito",
        "aprovechamiento_asistencia",
    ])?);
    let meta = id_of(&ana.ok(&[
        "pemc",
        "meta",
        "add",
        "--objetivo",
        &obj,
        "--descripcion",
        "Reducir alumnos que requieren apoyo en lectura",
        "--indicador",
        "% de alumnos que requieren apoyo en lectura",
        "--linea-base",
        "32",
        "--valor-meta",
        "15",
        "--unidad",
        "%",
        "--fecha-limite",
        "2026-06-30",
    ])?);
    let accion = id_of(&ana.ok(&[
        "pemc",
        "accion",
        "add",
        "--meta",
        &meta,
        "--descripcion",
        "Círculos de lectura los viernes",
        "--responsable",
        "Mtra. Ana López",
        "--recursos",
        "Biblioteca de aula",
        "--costo",
        "0",
        "--inicio",
        "2025-09-05",
        "--fin",
        "2026-06-26",
    ])?);

    // Luis records the council's agreements.
    let ac1 = id_of(&luis.ok(&[
        "acuerdo",
        "add",
        "--texto",
        "Revisar la asistencia de cada grupo todos los viernes",
        "--responsable",
        "Director",
        "--fecha-compromiso",
        "2025-10-31",
    ])?);
    let ac2 = id_of(&luis.ok(&[
        "acuerdo",
        "add",
        "--texto",
        "Invitar a las madres y padres a la lectura en voz alta",
        "--responsable",
        "Mtro. Luis Gómez",
    ])?);

    // First trip of the USB stick, both ways.
    carry(&luis, &ana, &usb)?;
    carry(&ana, &luis, &usb)?;
    assert_eq!(
        export(&ana)?,
        export(&luis)?,
        "after the first exchange both hold the same document"
    );

    // Concurrent, offline: both edit the same acuerdo's text and set different statuses.
    // Ana edits through $EDITOR (the path teachers use), Luis with --texto.
    let mut ana_editor = Replica::new(ana.dir.clone());
    ana_editor
        .env
        .push(("EDITOR".into(), "sed -i s/viernes/lunes/".into()));
    ana_editor
        .env
        .push(("VISUAL".into(), "sed -i s/viernes/lunes/".into()));
    ana_editor.ok(&["acuerdo", "edit", &ac1])?;
    luis.ok(&[
        "acuerdo",
        "edit",
        &ac1,
        "--texto",
        "Revisar la asistencia de cada grupo todos los viernes y avisar a las familias",
    ])?;
    ana.ok(&["acuerdo", "estado", &ac1, "cumplido"])?;
    luis.ok(&["acuerdo", "estado", &ac1, "cancelado"])?;

    carry(&luis, &ana, &usb)?;
    carry(&ana, &luis, &usb)?;

    // One document, identical on both laptops.
    let (ea, el) = (export(&ana)?, export(&luis)?);
    assert_eq!(ea, el, "both replicas converge to the same content");
    let hist_a: Vec<String> = ana
        .json(&["historial"])?
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["hash"].as_str().unwrap().to_string())
        .collect();
    let hist_l: Vec<String> = luis
        .json(&["historial"])?
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["hash"].as_str().unwrap().to_string())
        .collect();
    let (mut sa, mut sl) = (hist_a.clone(), hist_l.clone());
    sa.sort();
    sl.sort();
    assert_eq!(sa, sl, "same change set");
    assert_eq!(hist_a.iter().filter(|h| h.is_empty()).count(), 0);
    let genesis_count = ana
        .json(&["historial"])?
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["mensaje"] == "génesis")
        .count();
    assert_eq!(genesis_count, 1, "two offline inits share one genesis");

    // Everything present.
    let e = &ea["escuela"];
    assert_eq!(e["objetivos"][0]["id"], obj.as_str());
    assert_eq!(e["metas"][0]["id"], meta.as_str());
    assert_eq!(e["acciones"][0]["id"], accion.as_str());
    let acuerdos = e["acuerdos"].as_array().unwrap();
    assert_eq!(acuerdos.len(), 2);
    assert!(acuerdos.iter().any(|a| a["id"] == ac2.as_str()));

    // Both text edits survive, character by character.
    let texto = acuerdos.iter().find(|a| a["id"] == ac1.as_str()).unwrap()["texto"]
        .as_str()
        .unwrap();
    assert_eq!(
        texto,
        "Revisar la asistencia de cada grupo todos los lunes y avisar a las familias"
    );

    // The status conflict is listed on both, with both values and who set them.
    for r in [&ana, &luis] {
        let c = r.json(&["conflictos", "list"])?;
        let c = c.as_array().unwrap();
        assert_eq!(c.len(), 1, "exactly one conflict: {c:?}");
        assert_eq!(c[0]["ruta"], format!("acuerdos/{ac1}/estado"));
        let mut vals: Vec<(String, String)> = c[0]["valores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["valor"].as_str().unwrap().to_string(),
                    v["autor"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        vals.sort();
        assert_eq!(
            vals,
            vec![
                ("cancelado".to_string(), "Mtro. Luis Gómez".to_string()),
                ("cumplido".to_string(), "Mtra. Ana López".to_string())
            ]
        );
        let show = r.json(&["acuerdo", "show", &ac1])?;
        assert_eq!(show["en_conflicto"], serde_json::json!(["estado"]));
    }

    // The director resolves it on Ana's laptop; the resolution travels.
    let c = ana.json(&["conflictos", "list"])?;
    let opcion = c[0]["valores"]
        .as_array()
        .unwrap()
        .iter()
        .position(|v| v["valor"] == "cumplido")
        .unwrap()
        + 1;
    ana.ok(&[
        "conflictos",
        "resolve",
        &format!("acuerdos/{ac1}/estado"),
        "--opcion",
        &opcion.to_string(),
    ])?;
    carry(&ana, &luis, &usb)?;
    carry(&luis, &ana, &usb)?;
    for r in [&ana, &luis] {
        assert_eq!(r.json(&["conflictos", "list"])?, serde_json::json!([]));
        assert_eq!(r.json(&["acuerdo", "show", &ac1])?["estado"], "cumplido");
    }
    assert_eq!(export(&ana)?, export(&luis)?);

    // Importing the same bundle again changes nothing.
    let before = export(&luis)?;
    let again = luis.json(&["bundle", "import", usb.to_str().unwrap()])?;
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["cambios_nuevos"] == 0),
        "{again}"
    );
    assert_eq!(export(&luis)?, before);
    Ok(())
}
