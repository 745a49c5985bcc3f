// Scores results of the cache-tests.fyi suite (http-cache-tests) the way the suite's
// own report does: a test whose dependencies did not pass counts as failed; a
// `required` test passes when its result is `true`; `optimal` tests and `check`
// tests (informational) are counted apart.
//
//   node score.mjs RESULTS.json [--list] [--min-required N]
//
// Prints the score of RESULTS.json beside the reference results the suite ships
// (nginx, Squid, Traffic Server, httpd, Varnish, ...); with --list, every test of
// RESULTS.json that did not pass; exits 1 below --min-required required passes.
import fs from 'fs'
import path from 'path'
import { fileURLToPath, pathToFileURL } from 'url'

const here = path.dirname(fileURLToPath(import.meta.url))
const suite = path.join(here, 'node_modules', 'http-cache-tests')
const load = async (p) => (await import(pathToFileURL(path.join(suite, p)))).default

const tests = {}
// The suites the suite's own runner runs: its index and Surrogate-Control.
for (const s of [...await load('tests/index.mjs'), await load('tests/surrogate-control.mjs')]) {
  for (const t of s.tests) tests[t.id] = t
}

function scorer (results) {
  const memo = {}
  const classify = (id) => {
    if (memo[id]) return memo[id]
    const t = tests[id]
    const r = results[id]
    let c
    if (r === undefined) {
      c = 'untested'
    } else if ((t.depends_on || []).some(d => !['pass', 'yes'].includes(classify(d)))) {
      c = 'dependency failed'
    } else if (r === true) {
      c = t.kind === 'check' ? 'yes' : 'pass'
    } else {
      c = t.kind === 'check' ? 'no' : (r[0] === 'Setup' ? 'setup failed' : 'fail')
    }
    memo[id] = c
    return c
  }
  return classify
}

function score (results) {
  const classify = scorer(results)
  const s = { raw: 0, required: 0, optimal: 0, check: 0, all: 0 }
  for (const [id, t] of Object.entries(tests)) {
    if (results[id] === undefined) continue
    s.all += 1
    if (results[id] === true) s.raw += 1
    const c = classify(id)
    const kind = t.kind || 'required'
    if (c === 'pass' || c === 'yes') s[kind] += 1
  }
  return s
}

const counts = Object.fromEntries(['required', 'optimal', 'check'].map(k =>
  [k, Object.values(tests).filter(t => (t.kind || 'required') === k).length]))
const file = process.argv[2]
const mine = JSON.parse(fs.readFileSync(file))
const rows = [['wharf', 'this run', score(mine)]]
for (const ref of await load('results/index.mjs')) {
  if (ref.type !== 'rev-proxy' && ref.type !== 'cdn') continue
  const results = JSON.parse(fs.readFileSync(path.join(suite, 'results', ref.file)))
  rows.push([ref.name, ref.version, score(results)])
}
console.log(`http-cache-tests ${JSON.parse(fs.readFileSync(path.join(suite, 'package.json'))).version}: ` +
  `${Object.keys(tests).length} tests (${counts.required} required, ${counts.optimal} optimal, ${counts.check} informational)`)
console.log('| cache | version | passed (all) | required | optimal | informational yes |')
console.log('|---|---|---|---|---|---|')
for (const [name, version, s] of rows) {
  console.log(`| ${name} | ${version} | ${s.raw} | ${s.required} | ${s.optimal} | ${s.check} |`)
}

if (process.argv.includes('--list')) {
  const classify = scorer(mine)
  for (const [id, t] of Object.entries(tests)) {
    const c = classify(id)
    if (['pass', 'yes', 'untested'].includes(c)) continue
    const why = mine[id] === true ? '' : JSON.stringify(mine[id]).slice(0, 140)
    console.log(`${(t.kind || 'required').padEnd(8)} ${c.padEnd(17)} ${id}  ${why}`)
  }
}

const min = process.argv.indexOf('--min-required')
if (min > 0 && rows[0][2].required < Number(process.argv[min + 1])) {
  console.log(`FAILED: ${rows[0][2].required} required tests passed, fewer than ${process.argv[min + 1]}`)
  process.exit(1)
}
