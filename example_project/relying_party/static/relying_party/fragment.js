// The callback page of the demo relying party: a response in the URL fragment (fragment.jwt)
// never reaches a server by itself. Read it, take it out of the address bar and the history,
// and post it to the relying party, which verifies it.
(function () {
  "use strict";
  var form = document.getElementById("fragment-relay");
  var fragment = window.location.hash.replace(/^#/, "");
  if (!form) {
    return;
  }
  if (!fragment) {
    document.getElementById("fragment-reading").hidden = true;
    document.getElementById("fragment-empty").hidden = false;
    return;
  }
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  form.elements.relayed_fragment.value = fragment;
  form.submit();
}());
