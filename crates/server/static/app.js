// Sever admin UI: the little behaviour the pages need beyond htmx. Loaded
// from 'self' (the Content-Security-Policy forbids inline scripts), and
// optional: every form still works without it (the server asks for
// confirmation itself where it matters).
"use strict";

(function () {
  // A confirmation dialog for buttons marked data-confirm="message" (or
  // data-confirm-revoke on the Responder, whose message names the person
  // and the apps). Confirming submits the form with the same button.
  function confirmDialog() {
    return document.getElementById("confirm-dialog");
  }

  function revokeMessage(form) {
    const user = (form.elements.namedItem("username") || {}).value || "";
    const ticked = Array.from(form.querySelectorAll("input[name=targets]:checked")).map(
      (c) => c.value,
    );
    return (
      "Revoke every session of " + user.trim() + " in " + ticked.length +
      (ticked.length === 1 ? " app" : " apps") + " (" + ticked.join(", ") +
      ")? People signed in there are signed out now."
    );
  }

  document.addEventListener("click", function (ev) {
    const button = ev.target.closest("button[data-confirm], button[data-confirm-revoke]");
    if (!button || button.dataset.confirmed === "yes") {
      return;
    }
    const form = button.form;
    const dialog = confirmDialog();
    if (!form || !dialog) {
      return;
    }
    ev.preventDefault();
    if (!form.reportValidity()) {
      return;
    }
    const message = button.hasAttribute("data-confirm-revoke")
      ? revokeMessage(form)
      : button.dataset.confirm;
    dialog.querySelector("[data-confirm-message]").textContent = message;
    const ok = dialog.querySelector("[data-confirm-ok]");
    ok.textContent = button.dataset.confirmLabel || button.textContent.trim();
    dialog.returnValue = "";
    dialog.onclose = function () {
      if (dialog.returnValue === "ok") {
        button.dataset.confirmed = "yes";
        if (button.name === "confirm") {
          button.value = "yes";
        }
        form.requestSubmit(button);
        delete button.dataset.confirmed;
      }
    };
    dialog.showModal();
    ok.focus();
  });

  // Copy the text of the element a button names: data-copy="element-id".
  document.addEventListener("click", function (ev) {
    const button = ev.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    const source = document.getElementById(button.dataset.copy);
    if (!source) {
      return;
    }
    const text = source.value !== undefined ? source.value : source.textContent;
    const done = function () {
      button.textContent = "Copied";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        source.select && source.select();
      });
    } else if (source.select) {
      source.select();
      try {
        document.execCommand("copy");
        done();
      } catch (_) {
        // The text stays selected for the person to copy.
      }
    }
  });

  // Dialogs that hold something shown once (a new secret or key) open as
  // modal dialogs when the page loads.
  function showPending() {
    document.querySelectorAll("dialog[data-autoshow]").forEach(function (d) {
      if (!d.open) {
        d.showModal();
      }
    });
    // A link to a closed panel (#connector-okta) opens it.
    const target = location.hash && document.getElementById(location.hash.slice(1));
    if (target && target.tagName === "DETAILS") {
      target.open = true;
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", showPending);
  } else {
    showPending();
  }
})();
