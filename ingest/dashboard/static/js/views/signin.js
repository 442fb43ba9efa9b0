// Sign-in with an API token. The token stays in this tab's sessionStorage only.

import { h } from "../dom.js";

export function signInView({ onSubmit, message }) {
  const error = h("p", { class: "form-error", id: "signin-error", role: "alert" });
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    maxlength: "200",
    "aria-describedby": "token-help signin-error",
  });
  const button = h("button", { type: "submit", class: "button-primary" }, "Sign in");
  const form = h("form", { class: "signin-form", novalidate: true },
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { class: "help", id: "token-help" },
      "A clinician or admin token, created with ", h("code", {}, "rpm-ingest token create"),
      ". It is kept in this browser tab only and forgotten when the tab closes."),
    error,
    button,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      error.textContent = "Enter your API token.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    button.disabled = true;
    button.textContent = "Signing in\u2026";
    error.textContent = "";
    try {
      await onSubmit(token);
    } catch (err) {
      error.textContent = err.message;
      input.setAttribute("aria-invalid", "true");
      input.select();
      input.focus();
    } finally {
      button.disabled = false;
      button.textContent = "Sign in";
    }
  });
  return h("section", { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Remote patient monitoring"),
    h("p", { class: "lede" }, "Sign in to triage alerts and review your patients' vitals."),
    message ? h("p", { class: "notice", role: "status" }, message) : null,
    form,
  );
}
