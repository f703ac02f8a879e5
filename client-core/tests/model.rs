//! Focused tests of the document model: frozen genesis, merges of concurrent edits, visible and
//! resolvable conflicts, validation that writes nothing, archiving, tolerance of unknown fields,
//! and the figures of the school's summary and history.

use std::collections::BTreeSet;

use bitacora_core::ModelError;
use bitacora_core::automerge::transaction::Transactable;
use bitacora_core::automerge::{
    ActorId, AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value,
};
use bitacora_core::ids::{Cct, CicloEscolar, DocumentId, Fecha, RecordId, ZonaClave};
use bitacora_core::model::escuela::{
    self, Corte, EstadoAccion, EstadoAcuerdo, Fase, NivelLogro, NuevaAccion, NuevaMeta,
    NuevaSesion, NuevoAcuerdo, NuevoObjetivo,
};
use bitacora_core::model::{self, Ctx, conflictos, historial, zona};
use bitacora_core::resumen;

// ---------------------------------------------------------------------------------------------
// Helpers.

fn cct() -> Cct {
    Cct::parse("07DPR0123X").unwrap()
}

fn ciclo() -> CicloEscolar {
    CicloEscolar::parse("2025-2026").unwrap()
}

fn id(s: &str) -> RecordId {
    RecordId::parse(s).unwrap()
}

fn fecha(s: &str) -> Fecha {
    Fecha::parse(s).unwrap()
}

/// A device's replica of the school document: the shared genesis, then the device's actor.
fn replica(actor: u8) -> AutoCommit {
    let mut doc = escuela::genesis_escuela(&cct(), ciclo()).unwrap();
    doc.set_actor(ActorId::from([actor; 16]));
    doc
}

fn actor_hex(actor: u8) -> String {
    ActorId::from([actor; 16]).to_hex_string()
}

/// A context at time `ahora` (seconds) for the person `autor`.
fn ctx(ahora: i64, autor: &str) -> Ctx<'_> {
    Ctx {
        ahora: 1_760_000_000 + ahora,
        autor: Some(autor),
    }
}

/// Both replicas end up with every change of the other.
fn sync(a: &mut AutoCommit, b: &mut AutoCommit) {
    a.merge(b).unwrap();
    b.merge(a).unwrap();
}

fn heads(doc: &mut AutoCommit) -> Vec<ChangeHash> {
    let mut h = doc.get_heads();
    h.sort();
    h
}

fn acuerdo(texto: &str) -> NuevoAcuerdo {
    NuevoAcuerdo {
        texto: texto.into(),
        responsables: vec!["Mtra. Rosa".into()],
        fecha_compromiso: None,
        sesion_origen: None,
    }
}

fn leer_acuerdo(doc: &AutoCommit, k: &str) -> escuela::Acuerdo {
    escuela::leer(doc)
        .unwrap()
        .acuerdos
        .into_iter()
        .find(|a| a.id == k)
        .expect("acuerdo")
}

/// The map object of acuerdo `k`, navigated by hand as another client would.
fn obj_acuerdo(doc: &AutoCommit, k: &str) -> ObjId {
    let Some((Value::Object(ObjType::Map), acuerdos)) = doc.get(ROOT, "acuerdos").unwrap() else {
        panic!("acuerdos")
    };
    let Some((Value::Object(ObjType::Map), obj)) = doc.get(&acuerdos, k).unwrap() else {
        panic!("acuerdo {k}")
    };
    obj
}

fn as_json(doc: &AutoCommit) -> serde_json::Value {
    serde_json::to_value(escuela::leer(doc).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Genesis.

#[test]
fn genesis_is_frozen() {
    // If one of these changes, every device in the field would create a *different* document for
    // the same school or zone: never edit a genesis, add a migration instead.
    let mut escuela_doc = escuela::genesis_escuela(&cct(), ciclo()).unwrap();
    let h: Vec<String> = escuela_doc
        .get_heads()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        h,
        ["b57720ce8fa9eda020ec148bb222afe87b1877f6d1e518a1650e17496367ff69"]
    );

    let zona_clave = ZonaClave::parse("07FIZ0014").unwrap();
    let mut zona_doc = zona::genesis_zona(&zona_clave, ciclo()).unwrap();
    let h: Vec<String> = zona_doc
        .get_heads()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        h,
        ["ac7fa309fa125d1ce2dc31db1d759da7529b6b69e393ae331e0205ddfd46445b"]
    );

    // One change, written by the actor derived from the document id, at time 0.
    let changes = escuela_doc.get_changes(&[]);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].actor_id(),
        &model::genesis_actor(&DocumentId::escuela(&cct(), ciclo()))
    );
    assert_eq!(changes[0].timestamp(), 0);
    assert_eq!(changes[0].message(), Some("génesis"));
    let changes = zona_doc.get_changes(&[]);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].actor_id(),
        &model::genesis_actor(&DocumentId::zona(&zona_clave, ciclo()))
    );

    // The genesis reads as an empty document of the current schema.
    let e = escuela::leer(&escuela_doc).unwrap();
    assert_eq!(e.schema_version, model::SCHEMA_VERSION);
    assert_eq!(
        (e.cct.as_str(), e.ciclo.as_str(), e.catalogo.as_str()),
        ("07DPR0123X", "2025-2026", "pemc-2019")
    );
    assert_eq!(
        e.documento,
        DocumentId::escuela(&cct(), ciclo()).to_string()
    );
    assert_eq!(e.diagnostico.len(), 8);
    assert!(e.acuerdos.is_empty() && e.objetivos.is_empty() && e.concentrado.is_empty());
    let z = zona::leer(&zona_doc).unwrap();
    assert_eq!(
        (z.zona.as_str(), z.ciclo.as_str()),
        ("07FIZ0014", "2025-2026")
    );

    // Another school or cycle has another genesis.
    let mut otra = escuela::genesis_escuela(&Cct::parse("07DPR0124Y").unwrap(), ciclo()).unwrap();
    assert_ne!(otra.get_heads(), escuela_doc.get_heads());
    let mut otro_ciclo =
        escuela::genesis_escuela(&cct(), CicloEscolar::parse("2026-2027").unwrap()).unwrap();
    assert_ne!(otro_ciclo.get_heads(), escuela_doc.get_heads());
}

#[test]
fn independent_genesis_documents_merge_without_root_conflicts() {
    // Two devices initialise the same school offline and each starts writing.
    let mut a = replica(1);
    let mut b = replica(2);
    let ana = ctx(10, "Ana");
    escuela::registrar(&mut a, &ana, "Escuela Primaria Benito Juárez", "07FIZ0014").unwrap();
    escuela::agregar_acuerdo(&mut a, &ana, &id("k1"), &acuerdo("Revisar la asistencia")).unwrap();
    escuela::diagnostico(
        &mut a,
        &ana,
        "infraestructura",
        Some("Faltan bancas"),
        Some(2),
    )
    .unwrap();
    let beto = ctx(20, "Beto");
    let sesion = NuevaSesion {
        fase: Fase::Intensiva,
        numero: 1,
        fecha: fecha("2025-08-18"),
        asistentes: vec!["Ana".into(), "Beto".into()],
        proposito: "Diagnóstico".into(),
        productos: String::new(),
        practicas: String::new(),
    };
    escuela::agregar_sesion(&mut b, &beto, &id("s1"), &sesion).unwrap();
    escuela::agregar_acuerdo(&mut b, &beto, &id("k2"), &acuerdo("Leer en voz alta")).unwrap();
    escuela::concentrado_set(
        &mut b,
        &beto,
        3,
        "a",
        Corte::Diagnostico,
        &[("inscritos_inicio", 30)],
    )
    .unwrap();

    sync(&mut a, &mut b);

    assert_eq!(heads(&mut a), heads(&mut b));
    assert_eq!(
        a.get_changes(&[]).len(),
        7,
        "one shared genesis plus three changes each"
    );
    assert_eq!(conflictos::listar(&a), vec![]);
    assert_eq!(conflictos::listar(&b), vec![]);
    assert_eq!(as_json(&a), as_json(&b));
    let e = escuela::leer(&a).unwrap();
    assert_eq!(e.nombre.as_deref(), Some("Escuela Primaria Benito Juárez"));
    assert_eq!(e.zona.as_deref(), Some("07FIZ0014"));
    assert_eq!(
        e.acuerdos.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ["k1", "k2"]
    );
    assert_eq!(e.sesiones.len(), 1);
    assert_eq!(e.sesiones[0].asistentes, ["Ana", "Beto"]);
    let infra = e
        .diagnostico
        .iter()
        .find(|d| d.ambito == "infraestructura")
        .unwrap();
    assert_eq!(
        (infra.texto.as_str(), infra.prioridad),
        ("Faltan bancas", Some(2))
    );
    assert_eq!(e.concentrado.len(), 1);
    assert_eq!(e.concentrado[0].get("inscritos_inicio"), Some(30));
    assert_eq!(e.concentrado[0].grupo, "A");
    assert_eq!(
        e.autores.get(&actor_hex(1)).map(String::as_str),
        Some("Ana")
    );
    assert_eq!(
        e.autores.get(&actor_hex(2)).map(String::as_str),
        Some("Beto")
    );

    // The same holds for the zone document.
    let clave = ZonaClave::parse("07FIZ0014").unwrap();
    let mut za = zona::genesis_zona(&clave, ciclo()).unwrap();
    za.set_actor(ActorId::from([1; 16]));
    let mut zb = zona::genesis_zona(&clave, ciclo()).unwrap();
    zb.set_actor(ActorId::from([2; 16]));
    zona::agregar_practica(
        &mut za,
        &ana,
        &id("p1"),
        &cct(),
        "Rincón de lectura",
        "Libros",
        Some("infraestructura"),
    )
    .unwrap();
    zona::agregar_practica(
        &mut zb,
        &beto,
        &id("p2"),
        &cct(),
        "Tutoría entre pares",
        "",
        None,
    )
    .unwrap();
    sync(&mut za, &mut zb);
    assert_eq!(heads(&mut za), heads(&mut zb));
    assert_eq!(conflictos::listar(&za), vec![]);
    assert_eq!(zona::leer(&za).unwrap().practicas.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Concurrent edits.

#[test]
fn concurrent_text_edits_of_one_acuerdo_both_survive() {
    let mut a = replica(1);
    let mut b = replica(2);
    escuela::agregar_acuerdo(
        &mut a,
        &ctx(1, "Ana"),
        &id("k1"),
        &acuerdo("revisar la asistencia cada viernes"),
    )
    .unwrap();
    sync(&mut a, &mut b);

    // Offline, Ana edits the start and Beto the end.
    escuela::editar_texto_acuerdo(
        &mut a,
        &ctx(2, "Ana"),
        &id("k1"),
        "entre todos, revisar la asistencia cada viernes",
    )
    .unwrap();
    escuela::editar_texto_acuerdo(
        &mut b,
        &ctx(3, "Beto"),
        &id("k1"),
        "revisar la asistencia cada viernes y avisar a las familias",
    )
    .unwrap();
    sync(&mut a, &mut b);

    let esperado = "entre todos, revisar la asistencia cada viernes y avisar a las familias";
    assert_eq!(leer_acuerdo(&a, "k1").texto, esperado);
    assert_eq!(leer_acuerdo(&b, "k1").texto, esperado);
    assert!(leer_acuerdo(&a, "k1").en_conflicto.is_empty());
    assert_eq!(conflictos::listar(&a), vec![]);
    assert_eq!(heads(&mut a), heads(&mut b));

    // Text fields of other records merge the same way (diagnóstico, session products).
    escuela::diagnostico(
        &mut a,
        &ctx(4, "Ana"),
        "formacion_docente",
        Some("cursos"),
        None,
    )
    .unwrap();
    sync(&mut a, &mut b);
    escuela::diagnostico(
        &mut a,
        &ctx(5, "Ana"),
        "formacion_docente",
        Some("pocos cursos"),
        None,
    )
    .unwrap();
    escuela::diagnostico(
        &mut b,
        &ctx(6, "Beto"),
        "formacion_docente",
        Some("cursos en línea"),
        None,
    )
    .unwrap();
    sync(&mut a, &mut b);
    let d = escuela::leer(&a)
        .unwrap()
        .diagnostico
        .into_iter()
        .find(|d| d.ambito == "formacion_docente")
        .unwrap();
    assert_eq!(d.texto, "pocos cursos en línea");
}

#[test]
fn concurrent_status_conflict_is_visible_and_resolvable() {
    let mut a = replica(1);
    let mut b = replica(2);
    escuela::agregar_acuerdo(
        &mut a,
        &ctx(1, "Ana"),
        &id("k1"),
        &acuerdo("Pintar la barda"),
    )
    .unwrap();
    sync(&mut a, &mut b);
    assert_eq!(leer_acuerdo(&b, "k1").estado, "pendiente");

    escuela::estado_acuerdo(
        &mut a,
        &ctx(2, "Ana"),
        &id("k1"),
        EstadoAcuerdo::Cumplido,
        None,
    )
    .unwrap();
    escuela::estado_acuerdo(
        &mut b,
        &ctx(3, "Beto"),
        &id("k1"),
        EstadoAcuerdo::Cancelado,
        None,
    )
    .unwrap();
    sync(&mut a, &mut b);

    // Both replicas show the same conflict, with both values, their actors and authors.
    let lista = conflictos::listar(&a);
    assert_eq!(lista, conflictos::listar(&b));
    assert_eq!(lista.len(), 1);
    let ruta = "acuerdos/k1/estado";
    assert_eq!(lista[0].ruta, ruta);
    let valores: BTreeSet<(String, String, Option<String>)> = lista[0]
        .valores
        .iter()
        .map(|v| {
            (
                v.valor.as_str().unwrap().to_string(),
                v.actor.clone(),
                v.autor.clone(),
            )
        })
        .collect();
    let esperados: BTreeSet<(String, String, Option<String>)> = [
        (
            "cumplido".to_string(),
            actor_hex(1),
            Some("Ana".to_string()),
        ),
        (
            "cancelado".to_string(),
            actor_hex(2),
            Some("Beto".to_string()),
        ),
    ]
    .into();
    assert_eq!(valores, esperados);
    for doc in [&a, &b] {
        let k = leer_acuerdo(doc, "k1");
        assert_eq!(k.en_conflicto, ["estado"]);
        assert!(k.estado == "cumplido" || k.estado == "cancelado");
    }
    assert_eq!(leer_acuerdo(&a, "k1").estado, leer_acuerdo(&b, "k1").estado);

    // Wrong options and unknown paths are refused and write nothing.
    let antes = heads(&mut a);
    let opcion = |e: Result<(), ModelError>| {
        matches!(
            e,
            Err(ModelError::Invalid {
                campo: "opción",
                ..
            })
        )
    };
    assert!(opcion(conflictos::resolver(
        &mut a,
        &ctx(4, "Ana"),
        ruta,
        0
    )));
    assert!(opcion(conflictos::resolver(
        &mut a,
        &ctx(4, "Ana"),
        ruta,
        3
    )));
    for ruta in [
        "acuerdos/nope/estado",
        "acuerdos/k1/texto",
        "acuerdos/k1",
        "nombre",
        "",
        "x/y/z",
        "acuerdos/k1/estado/x",
    ] {
        let r = conflictos::resolver(&mut a, &ctx(4, "Ana"), ruta, 1);
        assert!(
            matches!(
                r,
                Err(ModelError::NotFound {
                    tipo: "conflicto",
                    ..
                })
            ),
            "{ruta}: {r:?}"
        );
    }
    assert_eq!(heads(&mut a), antes);

    // Choosing "cancelado" on one replica resolves it on both once they sync.
    let n = lista[0]
        .valores
        .iter()
        .position(|v| v.valor == "cancelado")
        .unwrap()
        + 1;
    conflictos::resolver(&mut a, &ctx(5, "Ana"), ruta, n).unwrap();
    assert_eq!(conflictos::listar(&a), vec![]);
    sync(&mut a, &mut b);
    for doc in [&a, &b] {
        assert_eq!(conflictos::listar(doc), vec![]);
        let k = leer_acuerdo(doc, "k1");
        assert!(k.en_conflicto.is_empty());
        assert_eq!(k.estado, "cancelado");
    }
    assert_eq!(heads(&mut a), heads(&mut b));
    let ultimo = historial::historial(&mut a).pop().unwrap();
    assert_eq!(ultimo.mensaje, format!("Conflicto resuelto: {ruta}"));

    // Once resolved there is nothing left to resolve.
    assert!(matches!(
        conflictos::resolver(&mut b, &ctx(6, "Beto"), ruta, 1),
        Err(ModelError::NotFound { .. })
    ));
}

#[test]
fn a_new_write_supersedes_a_conflict() {
    let mut a = replica(1);
    let mut b = replica(2);
    escuela::agregar_acuerdo(
        &mut a,
        &ctx(1, "Ana"),
        &id("k1"),
        &acuerdo("Pintar la barda"),
    )
    .unwrap();
    sync(&mut a, &mut b);
    escuela::estado_acuerdo(
        &mut a,
        &ctx(2, "Ana"),
        &id("k1"),
        EstadoAcuerdo::Cumplido,
        None,
    )
    .unwrap();
    escuela::estado_acuerdo(
        &mut b,
        &ctx(3, "Beto"),
        &id("k1"),
        EstadoAcuerdo::EnProceso,
        None,
    )
    .unwrap();
    sync(&mut a, &mut b);
    assert_eq!(conflictos::listar(&a).len(), 1);
    // Setting one of the conflicting values again is a write that settles it, even when it is
    // the value currently shown.
    let mostrado = EstadoAcuerdo::parse(&leer_acuerdo(&a, "k1").estado).unwrap();
    escuela::estado_acuerdo(&mut a, &ctx(4, "Ana"), &id("k1"), mostrado, None).unwrap();
    sync(&mut a, &mut b);
    assert_eq!(conflictos::listar(&b), vec![]);
    assert_eq!(leer_acuerdo(&b, "k1").estado, mostrado.as_str());
}

#[test]
fn concurrent_identical_writes_are_not_a_conflict() {
    let mut a = replica(1);
    let mut b = replica(2);
    escuela::agregar_acuerdo(
        &mut a,
        &ctx(1, "Ana"),
        &id("k1"),
        &acuerdo("Pintar la barda"),
    )
    .unwrap();
    escuela::concentrado_set(
        &mut a,
        &ctx(1, "Ana"),
        2,
        "B",
        Corte::Cierre,
        &[("inscritos_fin", 25)],
    )
    .unwrap();
    sync(&mut a, &mut b);

    for (doc, t, autor) in [(&mut a, 2, "Ana"), (&mut b, 3, "Beto")] {
        escuela::estado_acuerdo(
            doc,
            &ctx(t, autor),
            &id("k1"),
            EstadoAcuerdo::Cumplido,
            None,
        )
        .unwrap();
        escuela::archivar_registro(doc, &ctx(t, autor), "acuerdo", &id("k1"), true).unwrap();
        escuela::concentrado_set(
            doc,
            &ctx(t, autor),
            2,
            "B",
            Corte::Cierre,
            &[("apoyo_lectura", 4)],
        )
        .unwrap();
        escuela::diagnostico(doc, &ctx(t, autor), "carga_administrativa", None, Some(3)).unwrap();
    }
    sync(&mut a, &mut b);

    // Automerge really holds two concurrent values...
    assert_eq!(a.get_all(obj_acuerdo(&a, "k1"), "estado").unwrap().len(), 2);
    // ...but they agree, so nobody is asked to choose.
    assert_eq!(conflictos::listar(&a), vec![]);
    assert_eq!(conflictos::listar(&b), vec![]);
    let k = leer_acuerdo(&a, "k1");
    assert!(k.en_conflicto.is_empty());
    assert_eq!((k.estado.as_str(), k.archivado), ("cumplido", true));
    assert_eq!(
        escuela::leer(&a).unwrap().concentrado[0].get("apoyo_lectura"),
        Some(4)
    );
}

// ---------------------------------------------------------------------------------------------
// Validation.

#[test]
fn concentrado_set_rejects_inconsistent_counts_and_writes_nothing() {
    let mut doc = replica(1);
    let c = ctx(1, "Ana");
    let ok = escuela::concentrado_set(
        &mut doc,
        &c,
        3,
        "A",
        Corte::Cierre,
        &[("inscritos_inicio", 30), ("promedio_9_10", 20)],
    )
    .unwrap();
    assert_eq!(ok.total_alumnos(), Some(30));

    let antes_heads = heads(&mut doc);
    let antes = as_json(&doc);
    let invalid =
        |r: Result<escuela::Concentrado, ModelError>| matches!(r, Err(ModelError::Invalid { .. }));
    let inconsistent =
        |r: Result<escuela::Concentrado, ModelError>| matches!(r, Err(ModelError::Inconsistent(_)));
    let casos: Vec<(&str, Result<escuela::Concentrado, ModelError>, bool)> = vec![
        (
            "negative",
            escuela::concentrado_set(
                &mut doc,
                &c,
                3,
                "A",
                Corte::Cierre,
                &[("apoyo_lectura", -1)],
            ),
            true,
        ),
        (
            "negative after a valid count",
            escuela::concentrado_set(
                &mut doc,
                &c,
                3,
                "A",
                Corte::Cierre,
                &[("apoyo_lectura", 2), ("no_promovidos", -3)],
            ),
            true,
        ),
        (
            "unknown field",
            escuela::concentrado_set(
                &mut doc,
                &c,
                3,
                "A",
                Corte::Cierre,
                &[("alumnos_zurdos", 3)],
            ),
            true,
        ),
        (
            "no counts",
            escuela::concentrado_set(&mut doc, &c, 3, "A", Corte::Cierre, &[]),
            true,
        ),
        (
            "bad grade",
            escuela::concentrado_set(
                &mut doc,
                &c,
                7,
                "A",
                Corte::Cierre,
                &[("inscritos_inicio", 3)],
            ),
            true,
        ),
        (
            "bad group",
            escuela::concentrado_set(
                &mut doc,
                &c,
                3,
                "3",
                Corte::Cierre,
                &[("inscritos_inicio", 3)],
            ),
            true,
        ),
        (
            "outcomes past enrolment",
            escuela::concentrado_set(
                &mut doc,
                &c,
                3,
                "A",
                Corte::Cierre,
                &[("promedio_8_9", 5), ("no_promovidos", 6)],
            ),
            false,
        ),
        (
            "enrolment lowered under the outcomes",
            escuela::concentrado_set(
                &mut doc,
                &c,
                3,
                "A",
                Corte::Cierre,
                &[("inscritos_fin", 19)],
            ),
            false,
        ),
        (
            "apoyo past enrolment",
            escuela::concentrado_set(
                &mut doc,
                &c,
                3,
                "A",
                Corte::Cierre,
                &[("apoyo_matematicas", 31)],
            ),
            false,
        ),
        (
            "apoyo past the end-of-cycle enrolment",
            escuela::concentrado_set(
                &mut doc,
                &c,
                3,
                "A",
                Corte::Cierre,
                &[("inscritos_fin", 22), ("dificultad_relacionarse", 23)],
            ),
            false,
        ),
        (
            "no enrolment recorded",
            escuela::concentrado_set(&mut doc, &c, 3, "B", Corte::Cierre, &[("apoyo_lectura", 2)]),
            false,
        ),
        (
            "enrolment of another corte does not count",
            escuela::concentrado_set(
                &mut doc,
                &c,
                3,
                "A",
                Corte::Intermedio,
                &[("faltan_constantemente", 1)],
            ),
            false,
        ),
    ];
    for (caso, r, es_invalid) in casos {
        if es_invalid {
            assert!(invalid(r.clone()), "{caso}: {r:?}");
        } else {
            assert!(inconsistent(r.clone()), "{caso}: {r:?}");
        }
        assert!(r.unwrap_err().is_bad_input());
        assert_eq!(heads(&mut doc), antes_heads, "{caso} wrote something");
        assert_eq!(as_json(&doc), antes, "{caso} changed the document");
    }

    // The limits themselves are accepted.
    let r = escuela::concentrado_set(
        &mut doc,
        &c,
        3,
        "A",
        Corte::Cierre,
        &[
            ("inscritos_fin", 28),
            ("promedio_8_9", 8),
            ("apoyo_lectura", 28),
            ("faltan_constantemente", 0),
        ],
    )
    .unwrap();
    assert_eq!(r.total_alumnos(), Some(28));
    assert_ne!(heads(&mut doc), antes_heads);
}

#[test]
fn failed_operations_write_nothing() {
    let mut doc = replica(1);
    let c = ctx(1, "Ana");
    escuela::agregar_acuerdo(&mut doc, &c, &id("k1"), &acuerdo("Pintar la barda")).unwrap();
    escuela::agregar_objetivo(
        &mut doc,
        &c,
        &id("o1"),
        &NuevoObjetivo {
            texto: "Leer más".into(),
            para_que: String::new(),
            ambitos: vec!["formacion_docente".into()],
        },
    )
    .unwrap();
    let antes_heads = heads(&mut doc);
    let antes = as_json(&doc);

    let meta = NuevaMeta {
        objetivo: id("o1"),
        descripcion: "Subir".into(),
        indicador: String::new(),
        linea_base: None,
        valor_meta: None,
        unidad: String::new(),
        fecha_limite: None,
    };
    let accion = NuevaAccion {
        meta: id("m1"),
        descripcion: "Pase de lista".into(),
        responsables: vec![],
        recursos: String::new(),
        costo: None,
        inicio: None,
        fin: None,
    };
    let sesion = NuevaSesion {
        fase: Fase::Intensiva,
        numero: 6,
        fecha: fecha("2025-08-18"),
        asistentes: vec![],
        proposito: String::new(),
        productos: String::new(),
        practicas: String::new(),
    };
    let casos: Vec<(&str, Result<(), ModelError>)> = vec![
        (
            "duplicate id",
            escuela::agregar_acuerdo(&mut doc, &c, &id("k1"), &acuerdo("Otro")),
        ),
        (
            "empty text",
            escuela::agregar_acuerdo(&mut doc, &c, &id("k2"), &acuerdo("  ")),
        ),
        (
            "empty edit",
            escuela::editar_texto_acuerdo(&mut doc, &c, &id("k1"), " "),
        ),
        (
            "unknown session of origin",
            escuela::agregar_acuerdo(
                &mut doc,
                &c,
                &id("k2"),
                &NuevoAcuerdo {
                    sesion_origen: Some(id("s9")),
                    ..acuerdo("Otro")
                },
            ),
        ),
        (
            "unknown acuerdo",
            escuela::estado_acuerdo(&mut doc, &c, &id("k9"), EstadoAcuerdo::Cumplido, None),
        ),
        (
            "unknown review session",
            escuela::estado_acuerdo(
                &mut doc,
                &c,
                &id("k1"),
                EstadoAcuerdo::Cumplido,
                Some(&id("s9")),
            ),
        ),
        (
            "unknown objetivo",
            escuela::agregar_meta(
                &mut doc,
                &c,
                &id("m1"),
                &NuevaMeta {
                    objetivo: id("o9"),
                    ..meta.clone()
                },
            ),
        ),
        (
            "negative baseline",
            escuela::agregar_meta(
                &mut doc,
                &c,
                &id("m1"),
                &NuevaMeta {
                    linea_base: Some(-1.0),
                    ..meta.clone()
                },
            ),
        ),
        (
            "unknown meta",
            escuela::agregar_accion(&mut doc, &c, &id("a1"), &accion),
        ),
        (
            "unknown ámbito",
            escuela::diagnostico(&mut doc, &c, "deportes", Some("x"), None),
        ),
        (
            "priority out of range",
            escuela::diagnostico(&mut doc, &c, "infraestructura", Some("x"), Some(9)),
        ),
        (
            "session number out of range",
            escuela::agregar_sesion(&mut doc, &c, &id("s1"), &sesion),
        ),
        (
            "unknown conflict",
            conflictos::resolver(&mut doc, &c, "acuerdos/k1/estado", 1),
        ),
    ];
    for (caso, r) in casos {
        assert!(
            r.as_ref().is_err_and(ModelError::is_bad_input),
            "{caso}: {r:?}"
        );
        assert_eq!(heads(&mut doc), antes_heads, "{caso} wrote something");
        assert_eq!(as_json(&doc), antes, "{caso} changed the document");
    }

    // An error after the operation has started writing rolls everything back: here the
    // `autores` map is missing (a hand-made document), so recording the author fails after
    // the acuerdo was written in the transaction.
    doc.delete(ROOT, "autores").unwrap();
    doc.commit();
    let antes_heads = heads(&mut doc);
    let r = escuela::agregar_acuerdo(&mut doc, &c, &id("k2"), &acuerdo("Otro"));
    assert!(matches!(r, Err(ModelError::Shape(_))), "{r:?}");
    assert_eq!(heads(&mut doc), antes_heads);
    assert!(
        escuela::leer(&doc)
            .unwrap()
            .acuerdos
            .iter()
            .all(|a| a.id != "k2")
    );
    // Without an author name the same operation goes through.
    escuela::agregar_acuerdo(
        &mut doc,
        &Ctx {
            ahora: 5,
            autor: None,
        },
        &id("k2"),
        &acuerdo("Otro"),
    )
    .unwrap();
    assert_eq!(escuela::leer(&doc).unwrap().acuerdos.len(), 2);
}

#[test]
fn concurrent_valid_counts_can_merge_into_inconsistent_totals() {
    // Each replica's write is consistent with what it saw, but together they are not: the
    // merge cannot refuse data, so the read shows the sum past enrolment, and the next write to
    // that group is refused until someone corrects one of the counts.
    let mut a = replica(1);
    let mut b = replica(2);
    escuela::concentrado_set(
        &mut a,
        &ctx(1, "Ana"),
        4,
        "A",
        Corte::Cierre,
        &[("inscritos_inicio", 30)],
    )
    .unwrap();
    sync(&mut a, &mut b);
    escuela::concentrado_set(
        &mut a,
        &ctx(2, "Ana"),
        4,
        "A",
        Corte::Cierre,
        &[("promedio_9_10", 20)],
    )
    .unwrap();
    escuela::concentrado_set(
        &mut b,
        &ctx(3, "Beto"),
        4,
        "A",
        Corte::Cierre,
        &[("no_promovidos", 15)],
    )
    .unwrap();
    sync(&mut a, &mut b);

    let g = escuela::leer(&a).unwrap().concentrado.remove(0);
    assert_eq!(
        (g.get("promedio_9_10"), g.get("no_promovidos")),
        (Some(20), Some(15))
    );
    assert!(matches!(
        escuela::validar_concentrado(&g),
        Err(ModelError::Inconsistent(_))
    ));
    let r = escuela::concentrado_set(
        &mut a,
        &ctx(4, "Ana"),
        4,
        "A",
        Corte::Cierre,
        &[("apoyo_lectura", 2)],
    );
    assert!(matches!(r, Err(ModelError::Inconsistent(_))), "{r:?}");
    escuela::concentrado_set(
        &mut a,
        &ctx(5, "Ana"),
        4,
        "A",
        Corte::Cierre,
        &[("promedio_9_10", 15), ("apoyo_lectura", 2)],
    )
    .unwrap();
}

#[test]
fn text_objects_in_conflict_are_listed_and_resolvable() {
    // Another client stored an acuerdo's text as a plain string; two replicas editing it
    // concurrently each create a Text object under the same key.
    let mut a = replica(1);
    let mut b = replica(2);
    escuela::agregar_acuerdo(
        &mut a,
        &ctx(1, "Ana"),
        &id("k1"),
        &acuerdo("Pintar la barda"),
    )
    .unwrap();
    let obj = obj_acuerdo(&a, "k1");
    a.put(&obj, "texto", "pintar la barda").unwrap();
    a.commit();
    sync(&mut a, &mut b);
    assert_eq!(leer_acuerdo(&b, "k1").texto, "pintar la barda");

    escuela::editar_texto_acuerdo(&mut a, &ctx(2, "Ana"), &id("k1"), "pintar la barda azul")
        .unwrap();
    escuela::editar_texto_acuerdo(&mut b, &ctx(3, "Beto"), &id("k1"), "pintar la barda verde")
        .unwrap();
    sync(&mut a, &mut b);

    let lista = conflictos::listar(&a);
    assert_eq!(lista, conflictos::listar(&b));
    assert_eq!(lista.len(), 1);
    assert_eq!(lista[0].ruta, "acuerdos/k1/texto");
    let textos: BTreeSet<&str> = lista[0]
        .valores
        .iter()
        .map(|v| v.valor.as_str().unwrap())
        .collect();
    assert_eq!(
        textos,
        ["pintar la barda azul", "pintar la barda verde"].into()
    );

    let n = lista[0]
        .valores
        .iter()
        .position(|v| v.valor == "pintar la barda verde")
        .unwrap()
        + 1;
    conflictos::resolver(&mut b, &ctx(4, "Beto"), "acuerdos/k1/texto", n).unwrap();
    sync(&mut a, &mut b);
    assert_eq!(conflictos::listar(&a), vec![]);
    assert_eq!(leer_acuerdo(&a, "k1").texto, "pintar la barda verde");
    // And it is collaborative text again.
    escuela::editar_texto_acuerdo(
        &mut a,
        &ctx(5, "Ana"),
        &id("k1"),
        "pintar toda la barda verde",
    )
    .unwrap();
    escuela::editar_texto_acuerdo(
        &mut b,
        &ctx(6, "Beto"),
        &id("k1"),
        "pintar la barda verde claro",
    )
    .unwrap();
    sync(&mut a, &mut b);
    assert_eq!(
        leer_acuerdo(&b, "k1").texto,
        "pintar toda la barda verde claro"
    );
    assert_eq!(conflictos::listar(&b), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Archiving.

#[test]
fn archiving_keeps_the_record_and_concurrent_edits() {
    let mut a = replica(1);
    let mut b = replica(2);
    escuela::agregar_acuerdo(
        &mut a,
        &ctx(1, "Ana"),
        &id("k1"),
        &acuerdo("Organizar la kermés"),
    )
    .unwrap();
    sync(&mut a, &mut b);

    escuela::archivar_registro(&mut a, &ctx(2, "Ana"), "acuerdo", &id("k1"), true).unwrap();
    let k = leer_acuerdo(&a, "k1");
    assert!(k.archivado);
    assert_eq!(k.texto, "Organizar la kermés");

    // Beto has not seen the archiving and keeps working on the acuerdo.
    escuela::editar_texto_acuerdo(
        &mut b,
        &ctx(3, "Beto"),
        &id("k1"),
        "Organizar la kermés de primavera",
    )
    .unwrap();
    escuela::estado_acuerdo(
        &mut b,
        &ctx(4, "Beto"),
        &id("k1"),
        EstadoAcuerdo::EnProceso,
        None,
    )
    .unwrap();
    sync(&mut a, &mut b);

    for doc in [&a, &b] {
        let k = leer_acuerdo(doc, "k1");
        assert!(k.archivado);
        assert_eq!(k.texto, "Organizar la kermés de primavera");
        assert_eq!(k.estado, "en_proceso");
        assert!(k.en_conflicto.is_empty());
    }
    // Archived records still take edits, and can be restored.
    escuela::estado_acuerdo(
        &mut a,
        &ctx(5, "Ana"),
        &id("k1"),
        EstadoAcuerdo::Cumplido,
        None,
    )
    .unwrap();
    escuela::archivar_registro(&mut a, &ctx(6, "Ana"), "acuerdo", &id("k1"), false).unwrap();
    let k = leer_acuerdo(&a, "k1");
    assert!(!k.archivado);
    assert_eq!(k.estado, "cumplido");

    // Archiving and restoring concurrently is a visible conflict, not a silent choice.
    sync(&mut a, &mut b);
    escuela::archivar_registro(&mut a, &ctx(7, "Ana"), "acuerdo", &id("k1"), true).unwrap();
    escuela::archivar_registro(&mut b, &ctx(8, "Beto"), "acuerdo", &id("k1"), true).unwrap();
    escuela::archivar_registro(&mut b, &ctx(9, "Beto"), "acuerdo", &id("k1"), false).unwrap();
    sync(&mut a, &mut b);
    assert_eq!(leer_acuerdo(&a, "k1").en_conflicto, ["archivado"]);
    assert_eq!(conflictos::listar(&a)[0].ruta, "acuerdos/k1/archivado");

    // Bad requests.
    let c = ctx(10, "Ana");
    assert!(matches!(
        escuela::archivar_registro(&mut a, &c, "alumno", &id("k1"), true),
        Err(ModelError::Invalid { .. })
    ));
    assert!(matches!(
        escuela::archivar_registro(&mut a, &c, "acuerdo", &id("k9"), true),
        Err(ModelError::NotFound { .. })
    ));
    assert!(matches!(
        escuela::archivar_registro(&mut a, &c, "sesion", &id("k1"), true),
        Err(ModelError::NotFound { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Other versions.

#[test]
fn unknown_fields_survive() {
    let mut a = replica(1);
    let mut b = replica(2);
    escuela::agregar_acuerdo(
        &mut a,
        &ctx(1, "Ana"),
        &id("k1"),
        &acuerdo("Pintar la barda"),
    )
    .unwrap();

    // A newer version writes fields this one does not know, and a status it does not know.
    let obj = obj_acuerdo(&a, "k1");
    a.put(&obj, "prioridad_v2", "alta").unwrap();
    a.put(&obj, "estado", "en_revision").unwrap();
    let ext = a.put_object(ROOT, "extension_v3", ObjType::Map).unwrap();
    a.put(&ext, "modo", "piloto").unwrap();
    a.put(ROOT, "schema_version", 3u64).unwrap();
    a.commit();

    let e = escuela::leer(&a).unwrap();
    assert_eq!(e.schema_version, 3);
    assert_eq!(
        leer_acuerdo(&a, "k1").estado,
        "en_revision",
        "shown, not dropped"
    );

    // This version keeps working on the document, and another replica merges it.
    escuela::editar_texto_acuerdo(
        &mut a,
        &ctx(2, "Ana"),
        &id("k1"),
        "Pintar la barda de la entrada",
    )
    .unwrap();
    escuela::agregar_acuerdo(
        &mut b,
        &ctx(3, "Beto"),
        &id("k2"),
        &acuerdo("Reparar la llave"),
    )
    .unwrap();
    sync(&mut a, &mut b);
    escuela::estado_acuerdo(
        &mut b,
        &ctx(4, "Beto"),
        &id("k1"),
        EstadoAcuerdo::Cumplido,
        None,
    )
    .unwrap();
    escuela::archivar_registro(&mut b, &ctx(5, "Beto"), "acuerdo", &id("k1"), true).unwrap();
    escuela::concentrado_set(
        &mut b,
        &ctx(6, "Beto"),
        1,
        "A",
        Corte::Diagnostico,
        &[("inscritos_inicio", 20)],
    )
    .unwrap();
    sync(&mut a, &mut b);

    for doc in [&a, &b] {
        let obj = obj_acuerdo(doc, "k1");
        assert_eq!(
            doc.get(&obj, "prioridad_v2").unwrap().unwrap().0.as_str(),
            Some("alta")
        );
        let Some((Value::Object(ObjType::Map), ext)) = doc.get(ROOT, "extension_v3").unwrap()
        else {
            panic!("extension_v3")
        };
        assert_eq!(
            doc.get(&ext, "modo").unwrap().unwrap().0.as_str(),
            Some("piloto")
        );
        let k = leer_acuerdo(doc, "k1");
        assert_eq!(
            (k.texto.as_str(), k.estado.as_str(), k.archivado),
            ("Pintar la barda de la entrada", "cumplido", true)
        );
        assert_eq!(conflictos::listar(doc), vec![]);
    }
}

#[test]
fn older_or_unversioned_documents_still_read() {
    let mut doc = replica(1);
    escuela::agregar_acuerdo(
        &mut doc,
        &ctx(1, "Ana"),
        &id("k1"),
        &acuerdo("Pintar la barda"),
    )
    .unwrap();

    doc.put(ROOT, "schema_version", 0u64).unwrap();
    doc.commit();
    assert_eq!(escuela::leer(&doc).unwrap().schema_version, 0);
    assert_eq!(model::schema_version(&doc), Some(0));

    doc.delete(ROOT, "schema_version").unwrap();
    doc.commit();
    assert_eq!(model::schema_version(&doc), None);
    let e = escuela::leer(&doc).unwrap();
    assert_eq!(e.acuerdos.len(), 1);
    // Operations still work on it.
    escuela::estado_acuerdo(
        &mut doc,
        &ctx(2, "Ana"),
        &id("k1"),
        EstadoAcuerdo::EnProceso,
        None,
    )
    .unwrap();
    assert_eq!(leer_acuerdo(&doc, "k1").estado, "en_proceso");

    // A document whose root is not a school document is refused, not misread.
    let clave = ZonaClave::parse("07FIZ0014").unwrap();
    let z = zona::genesis_zona(&clave, ciclo()).unwrap();
    assert!(matches!(escuela::leer(&z), Err(ModelError::Shape(_))));
    assert!(matches!(zona::leer(&doc), Err(ModelError::Shape(_))));
}

// ---------------------------------------------------------------------------------------------
// Summary and history.

#[test]
fn resumen_of_a_hand_built_document() {
    let mut doc = replica(1);
    let mut t = 0;
    let mut c = || {
        t += 10;
        ctx(t, "Directora")
    };

    // Diagnóstico: 4 of 8 ámbitos written (whitespace does not count), one prioritised.
    escuela::diagnostico(
        &mut doc,
        &c(),
        "aprovechamiento_asistencia",
        Some("Baja asistencia"),
        Some(1),
    )
    .unwrap();
    for ambito in ["practicas_docentes", "formacion_docente", "infraestructura"] {
        escuela::diagnostico(&mut doc, &c(), ambito, Some("Algo que decir"), None).unwrap();
    }
    escuela::diagnostico(&mut doc, &c(), "carga_administrativa", Some("   "), None).unwrap();

    // Objetivos: o1 with two metas, o2 whose only meta is archived, o3 archived.
    let objetivo = |ambito: &str| NuevoObjetivo {
        texto: "Mejorar".into(),
        para_que: "Aprender".into(),
        ambitos: vec![ambito.into()],
    };
    escuela::agregar_objetivo(
        &mut doc,
        &c(),
        &id("o1"),
        &objetivo("aprovechamiento_asistencia"),
    )
    .unwrap();
    escuela::agregar_objetivo(
        &mut doc,
        &c(),
        &id("o2"),
        &objetivo("participacion_comunidad"),
    )
    .unwrap();
    escuela::agregar_objetivo(&mut doc, &c(), &id("o3"), &objetivo("infraestructura")).unwrap();
    escuela::archivar_registro(&mut doc, &c(), "objetivo", &id("o3"), true).unwrap();
    let meta = |o: &str| NuevaMeta {
        objetivo: id(o),
        descripcion: "Subir la asistencia".into(),
        indicador: "asistencia".into(),
        linea_base: Some(80.0),
        valor_meta: Some(95.0),
        unidad: "%".into(),
        fecha_limite: Some(fecha("2026-06-30")),
    };
    for (m, o) in [("m1", "o1"), ("m2", "o1"), ("m3", "o2")] {
        escuela::agregar_meta(&mut doc, &c(), &id(m), &meta(o)).unwrap();
    }
    escuela::archivar_registro(&mut doc, &c(), "meta", &id("m3"), true).unwrap();

    // Acciones: m1 has one, m2 only an archived one.
    let accion = |m: &str| NuevaAccion {
        meta: id(m),
        descripcion: "Pase de lista".into(),
        responsables: vec!["Mtro. Juan".into()],
        recursos: String::new(),
        costo: None,
        inicio: None,
        fin: None,
    };
    escuela::agregar_accion(&mut doc, &c(), &id("a1"), &accion("m1")).unwrap();
    escuela::agregar_accion(&mut doc, &c(), &id("a2"), &accion("m2")).unwrap();
    escuela::archivar_registro(&mut doc, &c(), "accion", &id("a2"), true).unwrap();
    escuela::estado_accion(&mut doc, &c(), &id("a1"), EstadoAccion::EnProceso).unwrap();

    // Logros: m1's latest by date is "cumplida" although "escaso_o_nulo" was recorded later;
    // m2's only entry is archived; the archived m3 does not count.
    escuela::registrar_logro(
        &mut doc,
        &c(),
        &id("g1"),
        &id("m1"),
        NivelLogro::Cumplida,
        "acta",
        fecha("2026-02-20"),
    )
    .unwrap();
    escuela::registrar_logro(
        &mut doc,
        &c(),
        &id("g2"),
        &id("m1"),
        NivelLogro::EscasoONulo,
        "",
        fecha("2025-10-15"),
    )
    .unwrap();
    escuela::registrar_logro(
        &mut doc,
        &c(),
        &id("g3"),
        &id("m2"),
        NivelLogro::AvanceSignificativo,
        "",
        fecha("2026-01-10"),
    )
    .unwrap();
    escuela::archivar_registro(&mut doc, &c(), "seguimiento", &id("g3"), true).unwrap();
    escuela::registrar_logro(
        &mut doc,
        &c(),
        &id("g4"),
        &id("m3"),
        NivelLogro::Cumplida,
        "",
        fecha("2026-01-10"),
    )
    .unwrap();

    // Sesiones: one kept, one archived.
    let sesion = |n| NuevaSesion {
        fase: Fase::Ordinaria,
        numero: n,
        fecha: fecha("2025-09-26"),
        asistentes: vec![],
        proposito: String::new(),
        productos: String::new(),
        practicas: String::new(),
    };
    escuela::agregar_sesion(&mut doc, &c(), &id("s1"), &sesion(1)).unwrap();
    escuela::agregar_sesion(&mut doc, &c(), &id("s2"), &sesion(2)).unwrap();
    escuela::archivar_registro(&mut doc, &c(), "sesion", &id("s2"), true).unwrap();

    // Acuerdos, asked on 2026-03-10.
    let hoy = fecha("2026-03-10");
    let acuerdos: &[(&str, Option<&str>, EstadoAcuerdo)] = &[
        ("k1", Some("2026-03-01"), EstadoAcuerdo::Pendiente), // overdue 9 days
        ("k2", Some("2026-02-10"), EstadoAcuerdo::EnProceso), // overdue 28 days
        ("k3", Some("2026-01-01"), EstadoAcuerdo::Cumplido),  // done
        ("k4", Some("2026-03-10"), EstadoAcuerdo::Pendiente), // due today: not yet overdue
        ("k5", Some("2026-04-01"), EstadoAcuerdo::Pendiente), // future
        ("k6", None, EstadoAcuerdo::Pendiente),               // no due date
        ("k7", Some("2026-01-01"), EstadoAcuerdo::Pendiente), // archived below
        ("k8", Some("2026-01-01"), EstadoAcuerdo::Cancelado), // cancelled
    ];
    for (k, f, estado) in acuerdos {
        let nuevo = NuevoAcuerdo {
            fecha_compromiso: f.map(fecha),
            ..acuerdo(&format!("acuerdo {k}"))
        };
        escuela::agregar_acuerdo(&mut doc, &c(), &id(k), &nuevo).unwrap();
        escuela::estado_acuerdo(&mut doc, &c(), &id(k), *estado, None).unwrap();
    }
    escuela::archivar_registro(&mut doc, &c(), "acuerdo", &id("k7"), true).unwrap();

    // Concentrado: cierre is the most advanced corte recorded; intermedio is ignored.
    escuela::concentrado_set(
        &mut doc,
        &c(),
        3,
        "A",
        Corte::Intermedio,
        &[("inscritos_inicio", 30), ("apoyo_lectura", 20)],
    )
    .unwrap();
    escuela::concentrado_set(
        &mut doc,
        &c(),
        3,
        "A",
        Corte::Cierre,
        &[
            ("inscritos_inicio", 30),
            ("inscritos_fin", 28),
            ("apoyo_lectura", 7),
            ("apoyo_matematicas", 5),
        ],
    )
    .unwrap();
    escuela::concentrado_set(
        &mut doc,
        &c(),
        3,
        "B",
        Corte::Cierre,
        &[
            ("inscritos_inicio", 25),
            ("apoyo_lectura", 3),
            ("apoyo_escritura", 4),
        ],
    )
    .unwrap();

    let e = escuela::leer(&doc).unwrap();
    let r = resumen::resumir(&e, conflictos::listar(&doc).len(), hoy);

    assert_eq!(
        (r.cct.as_str(), r.ciclo.as_str(), r.fecha.as_str()),
        ("07DPR0123X", "2025-2026", "2026-03-10")
    );
    // Completeness: (4/8 + 1 + 1 + 1/2 + 1/2) / 5 = 70 %.
    let p = &r.pemc;
    assert_eq!(
        (
            p.ambitos_con_diagnostico,
            p.ambitos_total,
            p.ambitos_priorizados
        ),
        (4, 8, 1)
    );
    assert_eq!(
        (
            p.objetivos,
            p.objetivos_con_meta,
            p.metas,
            p.metas_con_accion,
            p.acciones
        ),
        (2, 1, 2, 1, 1)
    );
    assert_eq!(p.porcentaje, 70);

    let logro: Vec<(&str, usize)> = r
        .metas_por_logro
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        logro,
        [
            ("avance_significativo", 0),
            ("cumplida", 1),
            ("escaso_o_nulo", 0),
            ("sin_registro", 1)
        ]
    );
    let acciones: Vec<(&str, usize)> = r
        .acciones_por_estado
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(acciones, [("en_proceso", 1)]);
    let acuerdos: Vec<(&str, usize)> = r
        .acuerdos_por_estado
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        acuerdos,
        [
            ("cancelado", 1),
            ("cumplido", 1),
            ("en_proceso", 1),
            ("pendiente", 4)
        ]
    );
    let vencidos: Vec<(&str, &str, i64)> = r
        .acuerdos_vencidos
        .iter()
        .map(|v| (v.id.as_str(), v.fecha_compromiso.as_str(), v.dias_vencido))
        .collect();
    assert_eq!(
        vencidos,
        [("k1", "2026-03-01", 9), ("k2", "2026-02-10", 28)]
    );
    assert_eq!(r.acuerdos_vencidos[0].texto, "acuerdo k1");
    assert_eq!(r.sesiones, 1);
    assert_eq!(r.conflictos, 0);

    // % requieren apoyo (seed 002): count / total students x 100 over the cierre groups that
    // recorded the count, a group's total being its end-of-cycle enrolment if recorded
    // (28 and 25 = 53 for lectura, recorded by both; 25 for escritura; 28 for matemáticas).
    let apoyo = r.apoyo.expect("apoyo");
    assert_eq!(
        (apoyo.corte.as_str(), apoyo.grupos, apoyo.total_alumnos),
        ("cierre", 2, 53)
    );
    let formula = |n: u64, base: u64| (n as f64 / base as f64 * 100.0 * 10.0).round() / 10.0;
    let ind: Vec<(&str, u64, f64, usize)> = apoyo
        .indicadores
        .iter()
        .map(|i| {
            (
                i.campo.as_str(),
                i.alumnos,
                i.porcentaje,
                i.grupos_con_registro,
            )
        })
        .collect();
    assert_eq!(
        ind,
        [
            ("apoyo_lectura", 10, 18.9, 2),
            ("apoyo_escritura", 4, 16.0, 1),
            ("apoyo_matematicas", 5, 17.9, 1),
            ("faltan_constantemente", 0, 0.0, 0),
            ("no_se_involucran", 0, 0.0, 0),
            ("dificultad_relacionarse", 0, 0.0, 0),
        ]
    );
    for i in &apoyo.indicadores {
        if i.alumnos_base > 0 {
            assert_eq!(i.porcentaje, formula(i.alumnos, i.alumnos_base));
        }
        assert_eq!(i.porcentaje, resumen::porcentaje(i.alumnos, i.alumnos_base));
    }
    assert_eq!(resumen::porcentaje(3, 0), 0.0);
    assert_eq!(resumen::porcentaje(1, 3), 33.3);
    assert_eq!(resumen::porcentaje(2, 3), 66.7);

    // Without any concentrado there is no apoyo figure; an unresolved conflict is counted.
    let vacio = escuela::leer(&replica(2)).unwrap();
    let r = resumen::resumir(&vacio, 2, hoy);
    assert_eq!(r.apoyo, None);
    assert_eq!((r.pemc.porcentaje, r.conflictos), (0, 2));
}

#[test]
fn historial_lists_messages_and_authors_in_order() {
    let mut a = replica(1);
    let mut b = replica(2);
    escuela::agregar_acuerdo(
        &mut a,
        &ctx(100, "Ana"),
        &id("k1"),
        &acuerdo("Pintar la barda"),
    )
    .unwrap();
    escuela::estado_acuerdo(
        &mut a,
        &ctx(200, "Ana"),
        &id("k1"),
        EstadoAcuerdo::EnProceso,
        None,
    )
    .unwrap();
    b.merge(&mut a).unwrap();
    escuela::editar_texto_acuerdo(&mut b, &ctx(300, "Beto"), &id("k1"), "Pintar la barda azul")
        .unwrap();
    // A change with nothing to write (the value is already there) is not recorded.
    escuela::estado_acuerdo(
        &mut b,
        &ctx(400, "Beto"),
        &id("k1"),
        EstadoAcuerdo::EnProceso,
        None,
    )
    .unwrap();

    let h = historial::historial(&mut b);
    let vista: Vec<(&str, Option<&str>, i64)> = h
        .iter()
        .map(|e| (e.mensaje.as_str(), e.autor.as_deref(), e.fecha))
        .collect();
    assert_eq!(
        vista,
        [
            ("génesis", None, 0),
            ("Acuerdo agregado: k1", Some("Ana"), 1_760_000_100),
            (
                "Estado del acuerdo k1: en_proceso",
                Some("Ana"),
                1_760_000_200
            ),
            ("Texto del acuerdo editado: k1", Some("Beto"), 1_760_000_300),
        ]
    );
    let genesis_actor = model::genesis_actor(&DocumentId::escuela(&cct(), ciclo())).to_hex_string();
    let actores: Vec<&str> = h.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(
        actores,
        [
            genesis_actor.as_str(),
            &actor_hex(1),
            &actor_hex(1),
            &actor_hex(2)
        ]
    );
    assert!(h.iter().all(|e| e.operaciones > 0));
    assert_eq!(h.last().unwrap().hash, b.get_heads()[0].to_string());
    assert_eq!(
        h.iter().map(|e| &e.hash).collect::<BTreeSet<_>>().len(),
        h.len()
    );
}
