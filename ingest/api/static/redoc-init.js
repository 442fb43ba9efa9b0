// Starts ReDoc on /redoc. A file of its own rather than an inline script, so the page's
// Content-Security-Policy can admit scripts from this origin only.
"use strict";
(function () {
  var root = document.getElementById("redoc");
  Redoc.init(root.dataset.openapiUrl, { disableSearch: false }, root);
})();
