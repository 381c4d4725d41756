// relaygate: small progressive enhancements shared by every page.
(function () {
	'use strict';
	// Forms with data-confirm ask first (the CSP forbids inline handlers).
	document.addEventListener('submit', function (ev) {
		var f = ev.target;
		var msg = f.getAttribute && f.getAttribute('data-confirm');
		if (msg && !window.confirm(msg)) {
			ev.preventDefault();
		}
	}, true);
})();
