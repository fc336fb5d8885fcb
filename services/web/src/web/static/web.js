// refnet web: progressive enhancement only; every page works without it. Loaded with `defer`, from this
// origin only (the CSP allows no inline script). Areas add their own small modules beside this file.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
})();
