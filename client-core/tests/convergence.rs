//! Convergence of the school document: however replicas edit and merge, once every replica has
//! merged every other they hold the same changes, read the same, and list the same conflicts.
//!
//! `replicas_converge_in_any_merge_order` is part of the project's contract (docs refer to it by
//! name). It runs 64 cases by default; `PROPTEST_CASES` overrides that. The scenarios come from
//! `bitacora-escenario` (tests/escenario).

use std::collections::BTreeSet;

use bitacora_core::model::{conflictos, escuela};
use bitacora_escenario::{Escenario, ejecutar, escenario, merge, sorted_heads};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_converge_in_any_merge_order(esc in escenario()) {
        let (mut reps, creados) = ejecutar(&esc)?;
        let Escenario { orden, vuelta, .. } = esc;
        // Merge in a random chain so the last replica of `orden` holds everything, then every
        // other replica merges it, in another random order.
        for w in orden.windows(2) {
            merge(&mut reps, w[1], w[0]);
        }
        let todo = *orden.last().unwrap();
        for &i in &vuelta {
            merge(&mut reps, i, todo);
        }

        let heads = sorted_heads(&mut reps[0]);
        let leido = escuela::leer(&reps[0]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let vista = serde_json::to_value(&leido).unwrap();
        let conf = conflictos::listar(&reps[0]);
        for (i, doc) in reps.iter_mut().enumerate().skip(1) {
            prop_assert_eq!(&sorted_heads(doc), &heads, "heads of replica {}", i);
            let v = serde_json::to_value(escuela::leer(doc).map_err(|e| TestCaseError::fail(e.to_string()))?).unwrap();
            prop_assert_eq!(&v, &vista, "read view of replica {}", i);
            prop_assert_eq!(&conflictos::listar(doc), &conf, "conflicts of replica {}", i);
        }

        // Nothing is lost: every record any replica created is in the merged document.
        let ids = |v: Vec<&String>| v.into_iter().cloned().collect::<BTreeSet<_>>();
        prop_assert_eq!(ids(leido.acuerdos.iter().map(|x| &x.id).collect()), creados.acuerdos);
        prop_assert_eq!(ids(leido.objetivos.iter().map(|x| &x.id).collect()), creados.objetivos);
        prop_assert_eq!(ids(leido.metas.iter().map(|x| &x.id).collect()), creados.metas);
        prop_assert_eq!(ids(leido.acciones.iter().map(|x| &x.id).collect()), creados.acciones);
        prop_assert_eq!(ids(leido.seguimiento.iter().map(|x| &x.id).collect()), creados.seguimiento);
        prop_assert_eq!(ids(leido.sesiones.iter().map(|x| &x.id).collect()), creados.sesiones);
        // The acuerdos' own conflict markers agree with the document-wide list.
        for a in &leido.acuerdos {
            let prefijo = format!("acuerdos/{}/", a.id);
            let listados: BTreeSet<&str> = conf
                .iter()
                .filter_map(|c| c.ruta.strip_prefix(&prefijo))
                .filter(|campo| !campo.contains('/'))
                .collect();
            let marcados: BTreeSet<&str> = a.en_conflicto.iter().map(String::as_str).collect();
            prop_assert_eq!(marcados, listados, "acuerdo {}", a.id);
        }
        // Shared genesis: the root objects never conflict.
        prop_assert!(conf.iter().all(|c| c.ruta.contains('/')), "root conflict: {:?}", conf);
    }
}
