// Interop peer for the `interop_js` test: the real automerge-repo JavaScript client against the
// Bitácora server. Usage: node interop.mjs <server http url> <automerge doc url> <token A1> <token A2> <token B>
// Prints one JSON line with what happened; exits non-zero on any failure.
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import * as A from "@automerge/automerge"

const [base, docUrl, tokA1, tokA2, tokB] = process.argv.slice(2)
const wsUrl = (tok) => base.replace(/^http/, "ws") + "/sync?token=" + encodeURIComponent(tok)
const repos = []
const repoFor = (tok) => {
  const r = new Repo({ network: [new WebSocketClientAdapter(wsUrl(tok), 1000)] })
  repos.push(r)
  return r
}
const withTimeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error("timeout: " + what)), ms))])

async function enrol(handle, tok) {
  const actor = A.getActorId(handle.doc())
  const res = await fetch(base + "/v1/actores", {
    method: "POST",
    headers: { Authorization: "Bearer " + tok, "content-type": "application/json" },
    body: JSON.stringify({ actor }),
  })
  if (!res.ok) throw new Error("enrol failed: " + res.status + " " + (await res.text()))
  return actor
}

function waitFor(handle, pred, what) {
  return withTimeout(
    new Promise((resolve) => {
      const check = () => {
        if (pred(handle.doc())) {
          handle.off("change", check)
          resolve()
        }
      }
      handle.on("change", check)
      check()
    }),
    20000,
    what,
  )
}

const out = {}
try {
  // Teacher 1 of school A opens the school's document and records an agreement.
  const h1 = await withTimeout(repoFor(tokA1).find(docUrl), 20000, "find A1")
  out.a1_tipo = h1.doc().tipo
  out.a1_actor = await enrol(h1, tokA1)
  h1.change((d) => {
    d.acuerdos["jsana00001"] = {
      texto: "Acuerdo escrito desde JavaScript",
      estado: "pendiente",
      responsables: { "Ana (JS)": true },
      creado: new Date(1760000000000),
      archivado: false,
    }
  })
  // Teacher 2 of the same school, another client, receives it through the server and answers.
  const h2 = await withTimeout(repoFor(tokA2).find(docUrl), 20000, "find A2")
  await waitFor(h2, (d) => d.acuerdos && d.acuerdos["jsana00001"], "A2 sees A1's acuerdo")
  out.a2_saw_a1 = true
  out.a2_actor = await enrol(h2, tokA2)
  h2.change((d) => {
    A.splice(d, ["acuerdos", "jsana00001", "texto"], 0, 0, "Nuevo: ")
    d.acuerdos["jsalma0001"] = {
      texto: "Segundo acuerdo, desde otro cliente",
      estado: "en_proceso",
      responsables: {},
      creado: new Date(1760000001000),
      archivado: false,
    }
  })
  await waitFor(h1, (d) => d.acuerdos["jsalma0001"] && d.acuerdos["jsana00001"].texto.startsWith("Nuevo: "), "A1 sees A2's edits")
  out.a1_saw_a2 = true
  out.heads_equal = JSON.stringify(A.getHeads(h1.doc()).sort()) === JSON.stringify(A.getHeads(h2.doc()).sort())
  // A teacher of school B asks for school A's document: it must be unavailable.
  try {
    const h3 = await withTimeout(repoFor(tokB).find(docUrl), 15000, "find B")
    out.other_school = "found:" + JSON.stringify(Object.keys(h3.doc() || {}))
  } catch (e) {
    out.other_school = String(e.message).includes("unavailable") ? "unavailable" : "error:" + e.message
  }
  console.log(JSON.stringify(out))
  await Promise.all(repos.map((r) => r.shutdown().catch(() => {})))
  process.exit(0)
} catch (e) {
  console.log(JSON.stringify({ ...out, error: String(e && e.stack || e) }))
  process.exit(1)
}
