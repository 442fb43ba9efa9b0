'use strict';
/*
 * Checks of the FHIR R4 vital-signs profiles (http://hl7.org/fhir/R4/observation-vitalsigns.html)
 * and of LOINC/UCUM pairs that Medplum's structural validator does not make: code bindings,
 * units, time zones, required elements and the blood-pressure panel's components.
 *
 * The tables come from the FHIR R4 specification, not from the service under test.
 */

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const CATEGORY_SYSTEM = 'http://terminology.hl7.org/CodeSystem/observation-category';
const VITALSIGNS = 'http://hl7.org/fhir/StructureDefinition/vitalsigns';
const SD = 'http://hl7.org/fhir/StructureDefinition/';

const STATUSES = new Set([
  'registered', 'preliminary', 'final', 'amended', 'corrected', 'cancelled', 'entered-in-error', 'unknown',
]);

// LOINC code -> allowed UCUM codes (vital-signs profile value sets; others as LOINC defines them).
const UNITS = {
  '8867-4': ['/min'],
  '9279-1': ['/min'],
  '2708-6': ['%'],
  '59408-5': ['%'],
  '8310-5': ['Cel', '[degF]'],
  '29463-7': ['kg', 'g', '[lb_av]'],
  '8480-6': ['mm[Hg]'],
  '8462-4': ['mm[Hg]'],
  '8478-0': ['mm[Hg]'],
  '2339-0': ['mg/dL'],
  '41653-7': ['mg/dL'],
  '55423-8': ['{steps}'],
};

// Specific vital-signs profiles: URL -> LOINC code the Observation.code must carry.
const PROFILE_CODE = {
  [`${SD}heartrate`]: '8867-4',
  [`${SD}resprate`]: '9279-1',
  [`${SD}oxygensat`]: '2708-6',
  [`${SD}bodytemp`]: '8310-5',
  [`${SD}bodyweight`]: '29463-7',
  [`${SD}bp`]: '85354-9',
};

const VITAL_SIGN_CODES = new Set([
  '85353-1', '9279-1', '8867-4', '2708-6', '59408-5', '8310-5', '8302-2', '9843-4', '29463-7',
  '39156-5', '85354-9', '8480-6', '8462-4', '8478-0',
]);

// dateTime with a time part must carry a zone (FHIR R4 dateTime rule).
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function loincCodes(codeableConcept) {
  return ((codeableConcept && codeableConcept.coding) || [])
    .filter((c) => c.system === LOINC)
    .map((c) => c.code);
}

function checkQuantity(quantity, loinc, path, problems) {
  if (!quantity || typeof quantity !== 'object') {
    problems.push({ path, text: 'valueQuantity is required' });
    return;
  }
  if (typeof quantity.value !== 'number' || !Number.isFinite(quantity.value)) {
    problems.push({ path: `${path}.value`, text: 'value must be a JSON number' });
  }
  if (quantity.system !== UCUM) {
    problems.push({ path: `${path}.system`, text: `system must be ${UCUM}` });
  }
  if (typeof quantity.code !== 'string' || !quantity.code) {
    problems.push({ path: `${path}.code`, text: 'UCUM code is required' });
  }
  if (typeof quantity.unit !== 'string' || !quantity.unit) {
    problems.push({ path: `${path}.unit`, text: 'unit is required' });
  }
  const allowed = UNITS[loinc];
  if (allowed && !allowed.includes(quantity.code)) {
    problems.push({ path: `${path}.code`, text: `UCUM code ${quantity.code} is not valid for LOINC ${loinc}` });
  }
}

function checkObservation(obs) {
  const problems = [];
  const profiles = (obs.meta && obs.meta.profile) || [];
  const codes = loincCodes(obs.code);
  const vital = profiles.includes(VITALSIGNS) || codes.some((c) => VITAL_SIGN_CODES.has(c));
  if (!STATUSES.has(obs.status)) {
    problems.push({ path: 'status', text: `status ${obs.status} is not in ObservationStatus` });
  }
  if (!codes.length) {
    problems.push({ path: 'code', text: 'code must carry a LOINC coding' });
  }
  for (const coding of (obs.code && obs.code.coding) || []) {
    if (coding.system === LOINC && !/^\d{1,7}-\d$/.test(String(coding.code))) {
      problems.push({ path: 'code', text: `${coding.code} is not a LOINC code` });
    }
  }
  if (obs.effectiveDateTime !== undefined && !DATETIME.test(String(obs.effectiveDateTime))) {
    problems.push({ path: 'effectiveDateTime', text: 'effectiveDateTime needs seconds and a time zone' });
  }
  if (vital) {
    const categories = (obs.category || []).flatMap((c) => c.coding || []);
    if (!categories.some((c) => c.system === CATEGORY_SYSTEM && c.code === 'vital-signs')) {
      problems.push({ path: 'category', text: 'vital-signs category is required' });
    }
    if (!obs.subject || !/^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(String(obs.subject.reference))) {
      problems.push({ path: 'subject', text: 'subject must reference a Patient' });
    }
    if (obs.effectiveDateTime === undefined && !obs.effectivePeriod) {
      problems.push({ path: 'effective[x]', text: 'effective[x] is required' });
    }
    if (!codes.some((c) => VITAL_SIGN_CODES.has(c))) {
      problems.push({ path: 'code', text: 'code is not in the vital-signs value set' });
    }
  }
  for (const profile of profiles) {
    const want = PROFILE_CODE[profile];
    if (want && !codes.includes(want)) {
      problems.push({ path: 'code', text: `profile ${profile} requires LOINC ${want}` });
    }
  }
  const isPanel = codes.includes('85354-9');
  if (isPanel) {
    if (obs.valueQuantity !== undefined) {
      problems.push({ path: 'valueQuantity', text: 'the blood-pressure panel has no top-level value' });
    }
    const components = obs.component || [];
    for (const want of ['8480-6', '8462-4']) {
      const found = components.filter((c) => loincCodes(c.code).includes(want));
      if (found.length !== 1) {
        problems.push({ path: 'component', text: `exactly one component ${want} is required` });
      }
    }
    components.forEach((component, i) => {
      const [code] = loincCodes(component.code);
      if (component.valueQuantity !== undefined) {
        checkQuantity(component.valueQuantity, code, `component[${i}].valueQuantity`, problems);
      } else if (!component.dataAbsentReason) {
        problems.push({ path: `component[${i}]`, text: 'component needs a value or a dataAbsentReason' });
      }
    });
  } else if (obs.valueQuantity !== undefined) {
    const code = codes.find((c) => UNITS[c]);
    checkQuantity(obs.valueQuantity, code, 'valueQuantity', problems);
  } else if (vital && !obs.dataAbsentReason && !(obs.hasMember && obs.hasMember.length)) {
    problems.push({ path: 'value[x]', text: 'a value or a dataAbsentReason is required' });
  }
  return problems;
}

// FHIR R4 Flag as the contract (ehr-interop.md §2) and the flag extensions define it.
const FLAG_PRIORITY = 'http://hl7.org/fhir/StructureDefinition/flag-priority';
const FLAG_DETAIL = 'http://hl7.org/fhir/StructureDefinition/flag-detail';
const PRIORITY_CODES = new Set(['PN', 'PL', 'PM', 'PH']);

function checkFlag(flag) {
  const problems = [];
  if (!['active', 'inactive', 'entered-in-error'].includes(flag.status)) {
    problems.push({ path: 'status', text: `status ${flag.status} is not a FlagStatus` });
  }
  if (!flag.code || typeof flag.code.text !== 'string' || !flag.code.text.trim()) {
    problems.push({ path: 'code', text: 'code.text is required' });
  }
  if (!flag.subject || !/^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(String(flag.subject.reference))) {
    problems.push({ path: 'subject', text: 'subject must reference a Patient' });
  }
  const categories = (flag.category || []).flatMap((c) => c.coding || []);
  if (!categories.some((c) => c.system === 'http://terminology.hl7.org/CodeSystem/flag-category' && c.code)) {
    problems.push({ path: 'category', text: 'a flag-category coding is required' });
  }
  const period = flag.period || {};
  if (!DATETIME.test(String(period.start))) {
    problems.push({ path: 'period.start', text: 'period.start needs seconds and a time zone' });
  }
  if (flag.status === 'inactive' && !DATETIME.test(String(period.end))) {
    problems.push({ path: 'period.end', text: 'an inactive Flag needs period.end' });
  }
  if (period.end !== undefined && String(period.end) < String(period.start)) {
    problems.push({ path: 'period.end', text: 'period.end is before period.start' });
  }
  const extensions = flag.extension || [];
  const priorities = extensions.filter((e) => e.url === FLAG_PRIORITY);
  if (priorities.length > 1) {
    problems.push({ path: 'extension', text: 'flag-priority appears more than once' });
  }
  for (const priority of priorities) {
    const codings = (priority.valueCodeableConcept && priority.valueCodeableConcept.coding) || [];
    if (!codings.some((c) => c.system === 'http://hl7.org/fhir/flag-priority-code' && PRIORITY_CODES.has(c.code))) {
      problems.push({ path: 'extension', text: 'flag-priority needs a flag-priority-code coding' });
    }
  }
  for (const detail of extensions.filter((e) => e.url === FLAG_DETAIL)) {
    if (!detail.valueReference || typeof detail.valueReference.reference !== 'string') {
      problems.push({ path: 'extension', text: 'flag-detail needs a valueReference' });
    }
  }
  return problems;
}

function checkResource(resource) {
  const problems = [];
  if (resource && resource.resourceType === 'Observation') {
    problems.push(...checkObservation(resource));
  }
  if (resource && resource.resourceType === 'Flag') {
    problems.push(...checkFlag(resource));
  }
  problems.push(...checkProfiles(resource));
  return problems;
}

// ------------------------------------------------------------------------------------------
// Profiles from StructureDefinitions (tests/fhir_server/profiles/*.json: US Core vital signs and
// the Personal Health Device IG). A resource claiming such a profile in meta.profile is checked
// against the differential of the profile and of each profile it derives from (baseDefinition
// chain, as far as the loaded definitions go): cardinalities, fixed and pattern values, slices
// (members are the elements matching the slice's fixed and pattern values) and required bindings
// to the UCUM value sets below. The x_* keys carry FSH invariants the IG states in FHIRPath.

const fs = require('node:fs');
const path = require('node:path');

const REQUIRED_VALUE_SETS = {
  'http://hl7.org/fhir/ValueSet/ucum-bodytemp|4.0.1': ['Cel', '[degF]'],
  'http://hl7.org/fhir/ValueSet/ucum-bodyweight|4.0.1': ['kg', 'g', '[lb_av]'],
};
const CHECKED_PREFIXES = ['http://hl7.org/fhir/us/core/', 'http://hl7.org/fhir/uv/phd/'];

const definitions = new Map();

function loadProfiles(dir = path.join(__dirname, 'profiles')) {
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const sd = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    definitions.set(sd.url, sd);
  }
  return definitions.size;
}

function asList(value) {
  if (value === undefined || value === null) {
    return [];
  }
  return Array.isArray(value) ? value : [value];
}

function children(node, name) {
  if (!node || typeof node !== 'object') {
    return [];
  }
  if (name.endsWith('[x]')) {
    const stem = name.slice(0, -3);
    return Object.keys(node)
      .filter((k) => k.startsWith(stem) && /^[A-Z]/.test(k.slice(stem.length)))
      .flatMap((k) => asList(node[k]));
  }
  return asList(node[name]);
}

/** Does `value` contain `pattern` (FHIR pattern[x] semantics: arrays by inclusion)? */
function matches(pattern, value) {
  if (Array.isArray(pattern)) {
    const values = asList(value);
    return pattern.every((p) => values.some((v) => matches(p, v)));
  }
  if (pattern && typeof pattern === 'object') {
    return Boolean(value) && typeof value === 'object' && Object.entries(pattern).every(([k, p]) => matches(p, value[k]));
  }
  return pattern === value;
}

function fixedOf(element) {
  for (const [key, value] of Object.entries(element)) {
    if (key.startsWith('fixed') || key.startsWith('pattern')) {
      return { kind: key.startsWith('fixed') ? 'fixed' : 'pattern', value };
    }
  }
  return undefined;
}

function segments(id) {
  return id.split('.').slice(1).map((segment) => {
    const [name, slice] = segment.split(':');
    return { name, slice };
  });
}

/** Is `node` a member of the slice whose element id is `sliceId`? Its slicing's discriminator
 * paths name the elements whose fixed or pattern values decide (all of them, when it has none). */
function isMember(node, sliceId, elements) {
  const parentId = sliceId.replace(/:[^.:]+$/, '');
  const parent = elements.find((e) => e.id === parentId);
  const paths = ((parent && parent.slicing && parent.slicing.discriminator) || []).map((d) => d.path);
  const decides = (e) =>
    paths.length === 0
      ? e.id === sliceId || e.id.startsWith(`${sliceId}.`)
      : paths.some((p) => e.id === (p === '$this' ? sliceId : `${sliceId}.${p}`));
  const rules = elements.filter((e) => decides(e) && fixedOf(e));
  return rules.every((rule) => {
    const rest = rule.id === sliceId ? [] : segments(`X.${rule.id.slice(sliceId.length + 1)}`);
    let nodes = [node];
    for (const seg of rest) {
      nodes = nodes.flatMap((n) => children(n, seg.name));
    }
    const { value } = fixedOf(rule);
    return nodes.some((n) => matches(value, n));
  });
}

/** The nodes an element id designates, grouped by parent: [[parent, [children]]]. */
function resolve(resource, id, elements) {
  const segs = segments(id);
  let parents = [resource];
  let prefix = id.split('.')[0];
  let groups = [];
  segs.forEach((seg, i) => {
    prefix = `${prefix}.${seg.name}${seg.slice ? `:${seg.slice}` : ''}`;
    const here = prefix;
    groups = parents.map((parent) => {
      let found = children(parent, seg.name);
      if (seg.slice) {
        found = found.filter((n) => isMember(n, here, elements));
      }
      return [parent, found];
    });
    if (i < segs.length - 1) {
      parents = groups.flatMap(([, found]) => found);
    }
  });
  return groups;
}

function checkElement(resource, element, elements, sdName) {
  const problems = [];
  const where = `${element.id} (${sdName})`;
  const groups = resolve(resource, element.id, elements);
  for (const [, found] of groups) {
    if (element.min !== undefined && found.length < element.min) {
      problems.push({ path: element.path, text: `${where}: at least ${element.min} required, found ${found.length}` });
    }
    if (element.max !== undefined && element.max !== '*' && found.length > Number(element.max)) {
      problems.push({ path: element.path, text: `${where}: at most ${element.max} allowed, found ${found.length}` });
    }
    const fixed = fixedOf(element);
    for (const node of found) {
      if (fixed && !matches(fixed.value, node)) {
        problems.push({ path: element.path, text: `${where}: must be ${JSON.stringify(fixed.value)}` });
      }
      const valueSet = element.binding && element.binding.strength === 'required' && REQUIRED_VALUE_SETS[element.binding.valueSet];
      if (valueSet && !valueSet.includes(node)) {
        problems.push({ path: element.path, text: `${where}: ${node} is not in ${element.binding.valueSet}` });
      }
      if (element.x_oneOf && !element.x_oneOf.includes(node)) {
        problems.push({ path: element.path, text: `${where}: must be one of ${element.x_oneOf.join(', ')}` });
      }
      if (element.x_regex && !new RegExp(element.x_regex).test(String(node))) {
        problems.push({ path: element.path, text: `${where}: ${node} does not match ${element.x_regex}` });
      }
    }
    if (element.x_types) {
      const stem = element.path.split('.').pop().replace('[x]', '');
      const parentKeys = groups.flatMap(([parent]) => Object.keys(parent || {}));
      for (const key of parentKeys.filter((k) => k.startsWith(stem) && /^[A-Z]/.test(k.slice(stem.length)))) {
        if (!element.x_types.includes(key.slice(stem.length))) {
          problems.push({ path: element.path, text: `${where}: ${key} is not allowed (only ${element.x_types.join(', ')})` });
        }
      }
    }
  }
  return problems;
}

/** Problems of `resource` against every loaded profile it claims (and their bases). */
function checkProfiles(resource) {
  const problems = [];
  const claimed = (resource && resource.meta && resource.meta.profile) || [];
  for (const url of claimed) {
    if (!definitions.has(url)) {
      if (CHECKED_PREFIXES.some((p) => url.startsWith(p))) {
        problems.push({ path: 'meta.profile', text: `unknown profile ${url}` });
      }
      continue;
    }
    const chain = [];
    for (let u = url; definitions.has(u); u = definitions.get(u).baseDefinition) {
      chain.unshift(definitions.get(u));
    }
    for (const sd of chain) {
      if (sd.type !== resource.resourceType) {
        problems.push({ path: 'meta.profile', text: `${sd.url} is a profile of ${sd.type}` });
        continue;
      }
      const elements = sd.differential.element;
      for (const element of elements) {
        problems.push(...checkElement(resource, element, elements, sd.id));
      }
      if (sd.url.endsWith('/PhdBaseObservation')) {
        // identifier:conditionalCreate (discriminator: exists): an identifier with a value and
        // neither system nor type, when the measurement has a time stamp (all of ours do)
        if (!(resource.identifier || []).some((i) => i.value && !i.system && !i.type)) {
          problems.push({ path: 'identifier', text: 'PhdBaseObservation: the PHD conditionalCreate identifier is missing' });
        }
      }
    }
  }
  return problems;
}

module.exports = { checkResource, checkObservation, checkFlag, checkProfiles, loadProfiles };
