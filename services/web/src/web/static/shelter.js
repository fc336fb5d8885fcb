// Shelter page: + and − change the number in place (no round trip on a slow line); Confirm sends it.
// Without script the same buttons post and the page comes back with the new number to confirm.
(function () {
  "use strict";
  var pools = document.querySelectorAll("form.pool");
  Array.prototype.forEach.call(pools, function (form) {
    var input = form.querySelector("input[name=capacity]");
    var note = form.querySelector(".pending");
    var min = parseInt(form.getAttribute("data-min"), 10) || 0;
    var saved = parseInt(form.getAttribute("data-capacity"), 10) || 0;
    var show = function () {
      var value = parseInt(input.value, 10);
      note.hidden = isNaN(value) || value === saved;
      note.textContent = note.getAttribute("data-text").replace("#", String(value));
    };
    Array.prototype.forEach.call(form.querySelectorAll("button.step"), function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        var value = parseInt(input.value, 10);
        if (isNaN(value)) { value = saved; }
        value = Math.max(min, Math.min(999, value + parseInt(button.value, 10)));
        input.value = String(value);
        show();
      });
    });
    input.addEventListener("input", show);
  });
})();
