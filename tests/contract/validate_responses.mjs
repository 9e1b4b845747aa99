// Holds every HTTP answer the C++ tests recorded (tests/testing/http_client.h
// with LEDGER_HTTP_RECORD_DIR set) to service/openapi.json: each answer's route
// and status must be documented, its Content-Type must be one the response
// lists, and its body must validate against that media type's schema (JSON
// Schema 2020-12, as OpenAPI 3.1 uses; NDJSON line by line). Any mismatch,
// or no recorded answer at all, fails.
//
// Usage: node validate_responses.mjs RECORD_DIR [OPENAPI_JSON]
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';

const here = dirname(fileURLToPath(import.meta.url));
const [recordDir, docPath = join(here, '../../service/openapi.json')] = process.argv.slice(2);
if (!recordDir) {
  console.error('usage: node validate_responses.mjs RECORD_DIR [OPENAPI_JSON]');
  process.exit(2);
}
const doc = JSON.parse(readFileSync(docPath, 'utf8'));
const DOC_ID = 'openapi.json';
// The document is not itself a schema (strict mode would refuse its
// `openapi`, `paths`...); its schemas are reached by JSON pointer.
const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
ajv.addSchema(doc, DOC_ID);

const escapePointer = (s) => s.replaceAll('~', '~0').replaceAll('/', '~1');
function follow(pointer) {
  let node = doc;
  for (const raw of pointer.slice(2).split('/')) node = node[raw.replaceAll('~1', '/').replaceAll('~0', '~')];
  if (node === undefined) throw new Error(`dangling $ref ${pointer}`);
  return node;
}
// A Response object and the JSON pointer where it lives (after its $ref).
function resolve(node, pointer) {
  while (node && node.$ref) {
    pointer = node.$ref;
    node = follow(pointer);
  }
  return [node, pointer];
}

// Path templates as regular expressions over the raw path; where two match
// (`{invoice_id}` and `{invoice_id}.csv`) the one with more literal text wins,
// as the route table puts the `.csv` row first.
const templates = Object.keys(doc.paths)
  .map((template) => {
    const literal = template.replace(/\{[^}]+\}/g, '');
    const source = template
      .split(/(\{[^}]+\})/)
      .map((part) => (part.startsWith('{') ? '([^/]*)' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('');
    return { template, regex: new RegExp(`^${source}$`), weight: literal.length };
  })
  .sort((a, b) => b.weight - a.weight);

function findOperation(method, target) {
  let path = target.split('?')[0];
  // The server tolerates one trailing slash (http/target.h).
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  const found = templates.find((t) => t.regex.test(path));
  const verb = method === 'HEAD' ? 'get' : method.toLowerCase();
  if (found && doc.paths[found.template][verb]) {
    const pointer = `#/paths/${escapePointer(found.template)}/${verb}`;
    return { name: `${method} ${found.template}`, responses: doc.paths[found.template][verb].responses, pointer };
  }
  // No route: 404 (no such path) or 405 (no such method), per x-unrouted.
  return { name: found ? `${method} ${found.template} (no such method)` : 'unrouted', responses: doc['x-unrouted'].responses,
           pointer: '#/x-unrouted' };
}

const validators = new Map();
function validatorAt(pointer) {
  if (!validators.has(pointer)) validators.set(pointer, ajv.compile({ $ref: `${DOC_ID}${pointer}` }));
  return validators.get(pointer);
}

// The problems of one recorded exchange; [] when it keeps to the document.
function check(rec) {
  const op = findOperation(rec.method, rec.target);
  const status = String(rec.status);
  const key = [status, `${status[0]}XX`, 'default'].find((k) => op.responses[k]);
  if (!key) return [op.name, [`status ${status} is not documented`]];
  let pointer = `${op.pointer}/responses/${key}`;
  const [response, at] = resolve(op.responses[key], pointer);
  pointer = at;
  const media = (rec.content_type || '').split(';')[0].trim().toLowerCase();
  if (!response.content) return [op.name, rec.body === '' ? [] : ['a body where the document has none']];
  if (!response.content[media]) {
    return [op.name, [`Content-Type ${rec.content_type} is not documented for ${status} (${Object.keys(response.content)})`]];
  }
  if (rec.method === 'HEAD') return [op.name, []];
  const validate = validatorAt(`${pointer}/content/${escapePointer(media)}/schema`);
  let values;
  try {
    if (media === 'application/json') values = [JSON.parse(rec.body)];
    else if (media === 'application/x-ndjson') values = rec.body.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
    else values = [rec.body];
  } catch (e) {
    return [op.name, [`body is not ${media}: ${e.message}`]];
  }
  const problems = [];
  values.forEach((value, i) => {
    if (!validate(value)) {
      const where = values.length > 1 ? `line ${i + 1}: ` : '';
      problems.push(...validate.errors.map((e) => `${where}${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`));
    }
  });
  return [op.name, problems];
}

const files = readdirSync(recordDir).filter((f) => f.endsWith('.ndjson'));
const seen = new Map();  // operation -> status -> count
const failures = [];
let records = 0;
for (const file of files) {
  for (const line of readFileSync(join(recordDir, file), 'utf8').split('\n')) {
    if (line === '') continue;
    const rec = JSON.parse(line);
    ++records;
    const [name, problems] = check(rec);
    if (!seen.has(name)) seen.set(name, new Map());
    seen.get(name).set(rec.status, (seen.get(name).get(rec.status) || 0) + 1);
    if (problems.length > 0) failures.push({ rec, name, problems });
  }
}

for (const [name, statuses] of [...seen].sort()) {
  console.log(`${name}: ${[...statuses].sort().map(([s, n]) => `${s}×${n}`).join(' ')}`);
}
const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`));
const untested = documented.filter((name) => !seen.has(name));
if (untested.length > 0) console.log(`no recorded answer for: ${untested.join(', ')}`);
for (const f of failures.slice(0, 20)) {
  console.error(`FAIL ${f.rec.method} ${f.rec.target} -> ${f.rec.status} (${f.name}):\n  ${f.problems.slice(0, 8).join('\n  ')}`);
}
if (records === 0) {
  console.error(`no recorded answers in ${recordDir}: were the tests run with LEDGER_HTTP_RECORD_DIR set?`);
  process.exit(1);
}
console.log(`responses: ${records - failures.length} passed, ${failures.length} failed`);
process.exit(failures.length > 0 ? 1 : 0);
