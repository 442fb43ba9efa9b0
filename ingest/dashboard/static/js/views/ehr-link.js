// The patients' link to the EHR on the patients list: each patient's status (linked, not found,
// several matches...), a "Look up in EHR" button for those not linked, and for admins the import
// of an EHR Group. Names and reasons that come from the EHR are set as text (dom.js), never markup.

import { announce, h, replace } from "../dom.js";

const LABELS = {
  linked: "Linked",
  pending: "Not looked up yet",
  not_found: "Not found",
  ambiguous: "Several matches",
  error: "EHR error",
};

function statusClass(status) {
  if (status === "linked") return "reason reason-data";
  if (status === "pending") return "muted";
  return "reason reason-warning";
}

/** The "EHR" cell of a patient's row. */
export function ehrLinkCell(session, patient) {
  const cell = h("td", { class: "ehr-link" });
  const draw = (link) => {
    cell.dataset.status = link.status;
    const parts = [h("span", { class: statusClass(link.status), title: link.detail || "" }, LABELS[link.status] || link.status)];
    if (link.status !== "linked") {
      if (link.detail) parts.push(h("span", { class: "muted ehr-link-detail" }, ` ${link.detail}`));
      parts.push(h("button", { type: "button", class: "ehr-lookup", onclick: lookUp }, "Look up in EHR"));
    }
    replace(cell, ...parts);
  };
  const lookUp = async (ev) => {
    const button = ev.currentTarget;
    button.disabled = true;
    button.textContent = "Looking up\u2026";
    try {
      const found = await session.api.post(`/v1/patients/${encodeURIComponent(patient.id)}/ehr-link`, {});
      draw(found.ehr_link);
      announce(`${patient.display_name}: ${LABELS[found.ehr_link.status] || found.ehr_link.status}`);
    } catch (err) {
      button.disabled = false;
      button.textContent = "Look up in EHR";
      announce(`Look-up failed: ${err.message}`);
    }
  };
  draw(patient.ehr_link || { status: "pending", detail: null });
  return cell;
}

/** Admins: register the members of an EHR Group (POST /v1/patients/import). */
export function importForm(session, onDone) {
  const group = h("input", {
    id: "ehr-group", name: "group", required: true, maxlength: "64", autocomplete: "off",
    pattern: "[A-Za-z0-9.\\-]{1,64}", title: "the Group's id in the EHR (letters, digits, '.', '-')",
  });
  const button = h("button", { type: "submit" }, "Import patients");
  const result = h("div", { class: "import-result", role: "status" });
  const submit = async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    replace(result, "Importing\u2026");
    try {
      const page = await session.api.post("/v1/patients/import", { group: group.value.trim() });
      const skipped = page.skipped.slice(0, 20).map((s) => h("li", {}, `${s.reference}: ${s.reason}`));
      replace(result,
        h("p", {}, `${page.created} registered, ${page.updated} updated, ${page.skipped_total} skipped`),
        skipped.length ? h("ul", { class: "import-skipped" }, skipped) : null);
      announce(`Import finished: ${page.created} registered, ${page.updated} updated`);
      onDone();
    } catch (err) {
      replace(result, h("p", { class: "error" }, `Import failed: ${err.message}`));
    } finally {
      button.disabled = false;
    }
  };
  return h("form", { class: "filters ehr-import", onsubmit: submit },
    h("div", { class: "field" }, h("label", { for: "ehr-group" }, "Import from an EHR Group (id)"), group),
    button, result);
}
