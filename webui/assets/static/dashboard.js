// relaygate dashboard: draws the per-minute charts with uPlot and keeps
// every number live by polling GET /api/v1/dashboard (no page reload).
(function () {
	'use strict';
	var POLL_MS = 5000;
	var palette = ['#1f6feb', '#1a7f37', '#8250df', '#bf8700', '#0a7ea4', '#cf222e', '#57606a'];
	var labels = JSON.parse(document.getElementById('dash-labels').textContent || '{}');
	var charts = {};
	var minutes = 180;
	var timer = null;

	function el(tag, text, cls) {
		var e = document.createElement(tag);
		if (text !== undefined && text !== null) { e.textContent = String(text); }
		if (cls) { e.className = cls; }
		return e;
	}
	function link(href, text) { var a = el('a', text); a.href = href; return a; }
	function fmtBytes(v) {
		var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'], i = 0;
		while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
		return (i === 0 ? v : v.toFixed(1)) + ' ' + u[i];
	}
	function fmtTime(s) {
		var d = new Date(s);
		if (isNaN(d) || d.getUTCFullYear() < 1971) { return '—'; }
		return d.toISOString().replace('T', ' ').slice(0, 19);
	}
	function replaceRows(tbody, rows, cols) {
		while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
		if (rows.length === 0) {
			var tr = el('tr'), td = el('td', labels.no_data, 'muted');
			td.colSpan = cols;
			tr.appendChild(td);
			tbody.appendChild(tr);
			return;
		}
		rows.forEach(function (r) { tbody.appendChild(r); });
	}

	// marks draws a dashed vertical line at each of the times (unix
	// seconds) over a chart: the burst alerts on the relayed chart.
	function marksPlugin(times) {
		return { hooks: { draw: function (u) {
			var ctx = u.ctx;
			ctx.save();
			ctx.strokeStyle = '#cf222e';
			ctx.setLineDash([4, 4]);
			ctx.lineWidth = 1.5;
			times.forEach(function (t) {
				var x = Math.round(u.valToPos(t, 'x', true));
				if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) { return; }
				ctx.beginPath();
				ctx.moveTo(x, u.bbox.top);
				ctx.lineTo(x, u.bbox.top + u.bbox.height);
				ctx.stroke();
			});
			ctx.restore();
		} } };
	}

	function drawChart(id, names, xs, ys, colors, marks) {
		colors = colors || palette;
		var box = document.getElementById(id);
		if (!box) { return; }
		var data = [xs].concat(ys);
		var key = names.join('\u0000') + '\u0001' + (marks || []).join(',');
		var c = charts[id];
		if (c && c.key === key) {
			c.plot.setData(data);
		} else {
			if (c) { c.plot.destroy(); }
			var series = [{}];
			names.forEach(function (n, i) {
				series.push({ label: n, stroke: colors[i % colors.length], width: 2,
					fill: names.length === 1 ? colors[i % colors.length] + '22' : undefined,
					points: { show: false } });
			});
			var plot = new uPlot({
				width: Math.max(box.clientWidth, 200), height: 230,
				series: series,
				scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(max, 4)]; } } },
				axes: [{ grid: { stroke: '#eef1f4' } }, { grid: { stroke: '#eef1f4' }, size: 45 }],
				legend: { live: true },
				plugins: marks && marks.length ? [marksPlugin(marks)] : []
			}, data, box);
			charts[id] = { plot: plot, key: key };
		}
		var total = 0;
		ys.forEach(function (s) { s.forEach(function (v) { total += v; }); });
		box.setAttribute('data-total', String(total));
		box.setAttribute('data-series', String(ys.length));
		box.setAttribute('data-points', String(xs.length));
		box.setAttribute('data-marks', String((marks || []).length));
	}

	function render(d) {
		var names = Object.keys(d.relayed).sort();
		var relayed = names.map(function (n) { return d.relayed[n]; });
		if (names.length === 0) { names = ['—']; relayed = [d.minutes.map(function () { return 0; })]; }
		var marks = d.alerts.map(function (a) { return Math.floor(new Date(a.time).getTime() / 60000) * 60; });
		drawChart('chart-relayed', names, d.minutes, relayed, undefined, marks);
		drawChart('chart-blocked', [d.monitor ? labels.would_block : labels.blocked], d.minutes, [d.blocked], ['#cf222e']);
		drawChart('chart-deferred', [labels.deferred], d.minutes, [d.deferred], ['#bf8700']);
		var outcomes = ['relayed', 'blocked', 'would_block', 'deferred', 'upstream_error', 'shed'];
		drawChart('chart-outcomes', outcomes.map(function (o) { return labels['outcome_' + (o === 'shed' ? 'shed_short' : o)]; }),
			d.minutes, outcomes.map(function (o) { return d.outcomes[o]; }),
			['#1a7f37', '#cf222e', '#fb8f44', '#bf8700', '#8250df', '#57606a']);

		// Monitor mode: nothing is blocked yet; the lists are who would be.
		document.getElementById('monitor-note').hidden = !d.monitor;
		['label-blocked', 'title-blocked', 'title-top-hosts'].forEach(function (id) {
			var e = document.getElementById(id);
			e.textContent = e.getAttribute(d.monitor ? 'data-monitor' : 'data-enforce');
		});
		var al = document.getElementById('alerts');
		while (al.firstChild) { al.removeChild(al.firstChild); }
		d.alerts.forEach(function (a) {
			var li = el('li');
			li.appendChild(el('span', 'alert', 'kind kind-alert'));
			li.appendChild(document.createTextNode(' ' + fmtTime(a.time) + ' ' + (a.relay || '') + ' ' + (a.mail_from || '') + ': ' + a.detail));
			al.appendChild(li);
		});
		['1h', '24h'].forEach(function (w) {
			replaceRows(document.getElementById('top-senders-' + w), (d.top_senders[w] || []).map(function (r) {
				var tr = el('tr');
				tr.appendChild(el('td', r.relay));
				tr.appendChild(el('td', r.sender));
				tr.appendChild(el('td', r.messages, 'num'));
				return tr;
			}), 3);
		});

		var mode = document.getElementById('mode');
		mode.textContent = d.status.mode;
		mode.className = 'badge mode-' + d.status.mode;
		var serving = document.getElementById('serving');
		serving.textContent = '';
		serving.appendChild(d.status.serving ? el('span', labels.serving_up, 'badge ok') : el('span', labels.serving_down, 'badge bad'));
		document.getElementById('data-path').textContent = labels['data_path_' + d.status.data_path] || '';
		document.getElementById('uptime').textContent = d.status.uptime;
		['relayed', 'blocked', 'deferred', 'outcome_shed', 'encrypted_sessions'].forEach(function (k) {
			document.getElementById('total-' + k).textContent = String(d.totals[k] || 0);
		});

		replaceRows(document.getElementById('top-hosts'), d.top_hosts.map(function (h) {
			var tr = el('tr'), td = el('td');
			td.appendChild(link('/hosts/' + encodeURIComponent(h.key), h.key));
			tr.appendChild(td);
			tr.appendChild(el('td', h.value, 'num'));
			return tr;
		}), 2);
		replaceRows(document.getElementById('ports'), d.status.ports.map(function (p) {
			var tr = el('tr');
			tr.appendChild(el('td', p.name));
			tr.appendChild(el('td', p.role));
			var st = el('td');
			st.appendChild(el('span', p.oper_state, 'badge ' + (p.oper_state === 'up' ? 'ok' : 'bad')));
			tr.appendChild(st);
			tr.appendChild(el('td', fmtBytes(p.rx_bytes) + ' / ' + p.rx_packets, 'num'));
			tr.appendChild(el('td', fmtBytes(p.tx_bytes) + ' / ' + p.tx_packets, 'num'));
			return tr;
		}), 5);
		var ctr = document.getElementById('counters');
		while (ctr.firstChild) { ctr.removeChild(ctr.firstChild); }
		Object.keys(d.status.counters).sort().forEach(function (k) {
			var tr = el('tr');
			tr.appendChild(el('td', k));
			tr.appendChild(el('td', d.status.counters[k], 'num'));
			ctr.appendChild(tr);
		});
		replaceRows(document.getElementById('recent'), d.recent.map(function (e) {
			var tr = el('tr');
			tr.appendChild(el('td', fmtTime(e.time)));
			var k = el('td');
			k.appendChild(el('span', e.kind, 'kind kind-' + e.kind));
			tr.appendChild(k);
			var c = el('td');
			if (e.client) { c.appendChild(link('/hosts/' + encodeURIComponent(e.client), e.client)); }
			tr.appendChild(c);
			tr.appendChild(el('td', e.mail_from));
			return tr;
		}), 4);
		document.body.setAttribute('data-dashboard-updated', String(Date.now()));
	}

	function poll() {
		if (timer) { window.clearTimeout(timer); timer = null; }
		fetch('/api/v1/dashboard?minutes=' + minutes, { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
			.then(function (r) {
				if (r.status === 401) { window.location.href = '/login?next=/'; return null; }
				if (!r.ok) { throw new Error('HTTP ' + r.status); }
				return r.json();
			})
			.then(function (d) { if (d) { render(d); document.getElementById('live').classList.remove('bad-text'); } })
			.catch(function () { document.getElementById('live').classList.add('bad-text'); })
			.finally(function () { if (!timer) { timer = window.setTimeout(poll, POLL_MS); } });
	}

	// The range buttons change the charts' time span.
	Array.prototype.forEach.call(document.querySelectorAll('.range button'), function (b) {
		b.addEventListener('click', function () {
			minutes = parseInt(b.getAttribute('data-minutes'), 10);
			Array.prototype.forEach.call(document.querySelectorAll('.range button'), function (o) {
				o.setAttribute('aria-pressed', o === b ? 'true' : 'false');
			});
			Array.prototype.forEach.call(document.querySelectorAll('.range-label'), function (l) {
				l.textContent = b.getAttribute('data-label');
			});
			poll();
		});
	});

	render(JSON.parse(document.getElementById('dash-data').textContent));
	window.addEventListener('resize', function () {
		Object.keys(charts).forEach(function (id) {
			var box = document.getElementById(id);
			charts[id].plot.setSize({ width: Math.max(box.clientWidth, 200), height: 230 });
		});
	});
	timer = window.setTimeout(poll, POLL_MS);
})();
