/* The charge nurse's board (plain JavaScript, served by carerelay). Without it the page still works:
   every "Assign" link opens the board with the form filled in, and the person list shows everyone
   sensible, grouped. With it:
   - the person list offers only nurses for the nursing roles (primary, secondary, charge nurse);
   - an "Assign" link fills the form in place and moves the focus there, without a reload. */
(function () {
  "use strict";
  var form = document.getElementById("assign");
  if (!form) { return; }
  var role = document.getElementById("assign-role");
  var person = document.getElementById("assign-person");
  var target = document.getElementById("assign-target");
  var nurseOnly = (role.dataset.nurseOnly || "").split(/\s+/);

  function fit() {
    var nursesOnly = nurseOnly.indexOf(role.value) !== -1;
    person.querySelectorAll("option[data-profession]").forEach(function (option) {
      var unfit = nursesOnly && option.dataset.profession !== "nurse";
      option.hidden = unfit;
      option.disabled = unfit;
      if (unfit && option.selected) { person.value = ""; }
    });
  }
  role.addEventListener("change", fit);
  fit();

  /* Delegated: the board's HTML is replaced whenever it refreshes. */
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[data-assign-target]") : null;
    if (!link) { return; }
    event.preventDefault();
    target.value = link.dataset.assignTarget;
    var shift = form.querySelector('input[name="shift"][value="' + link.dataset.assignShift + '"]');
    if (shift) { shift.checked = true; }
    if (link.dataset.assignRole) {
      role.value = link.dataset.assignRole;
      fit();
    }
    form.scrollIntoView({ block: "start" });
    person.focus();
  });
}());
