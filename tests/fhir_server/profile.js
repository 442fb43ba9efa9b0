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
  if (resource && resource.resourceType === 'Observation') {
    return checkObservation(resource);
  }
  if (resource && resource.resourceType === 'Flag') {
    return checkFlag(resource);
  }
  return [];
}

module.exports = { checkResource, checkObservation, checkFlag };
