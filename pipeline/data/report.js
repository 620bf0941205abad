// synthgate report.html: draws the map and runs the rejection browser from the page's JSON.
// Record text is untrusted: it only ever reaches the page through textContent (never
// innerHTML), and no URL is built from data. The URL fragment carries the view state:
// #reason=near_duplicate&q=word&sort=score-desc&page=2 filters the rejections,
// #section=map shows one section alone (a link to it, or a screenshot).
(function () {
  'use strict';
  var data;
  try {
    data = JSON.parse(document.getElementById('report-data').textContent);
  } catch (err) {
    document.body.setAttribute('data-error', 'the report data could not be read');
    return;
  }
  var records = data.records || [];
  var SCORE_NAMES = {
    dup_similarity: 'similarity to the record it repeats',
    real_nn_sim: 'similarity to the nearest real record',
    formulaic: 'formulaic score (0 natural, 1 boilerplate)',
    distance_pctl: 'distance to real, percentile of the real hold-out',
    benchmark_similarity: 'similarity to the benchmark item'
  };
  var PAGE = 20;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fmt(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v !== 'number') return String(v);
    if (Number.isInteger(v)) return v.toLocaleString('en');
    return Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(3);
  }

  function readHash() {
    var out = {};
    var h = location.hash.replace(/^#/, '');
    if (h.indexOf('=') < 0) return out;
    h.split('&').forEach(function (part) {
      var i = part.indexOf('=');
      if (i <= 0) return;
      try {
        out[decodeURIComponent(part.slice(0, i))] =
          decodeURIComponent(part.slice(i + 1).replace(/\+/g, ' '));
      } catch (err) { /* a malformed escape: ignore that part */ }
    });
    return out;
  }

  function writeHash(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      if (params[k]) parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(params[k]));
    });
    try {
      history.replaceState(null, '', parts.length ? '#' + parts.join('&') : location.pathname);
    } catch (err) { /* some file:// contexts refuse; the view still works */ }
  }

  var params = readHash();

  function showSection(name) {
    var sections = document.querySelectorAll('main > section');
    var known = false;
    sections.forEach(function (s) { if (s.id === name) known = true; });
    if (!known) return;
    document.body.classList.add('single');
    sections.forEach(function (s) { s.hidden = s.id !== name; });
  }
  if (params.section) showSection(params.section);
  // A plain anchor (a section link) leaves the one-section view for the whole page.
  window.addEventListener('hashchange', function () {
    if (location.hash.indexOf('=') >= 0 || !document.body.classList.contains('single')) return;
    document.body.classList.remove('single');
    document.querySelectorAll('main > section').forEach(function (s) { s.hidden = false; });
    window.dispatchEvent(new Event('resize'));   // the map redraws at its visible size
    var target = document.getElementById(location.hash.slice(1));
    if (target) target.scrollIntoView();
  });

  // ------------------------------------------------------------------------ map
  function setupMap() {
    var canvas = document.getElementById('map-canvas');
    var m = data.map;
    if (!canvas || !m || !m.x || !m.x.length) return;
    var tip = document.getElementById('map-tip');
    var visible = m.groups.map(function () { return true; });
    var n = m.x.length;
    var px = new Float32Array(n), py = new Float32Array(n);
    var minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
    for (var i = 0; i < n; i++) {
      minX = Math.min(minX, m.x[i]); maxX = Math.max(maxX, m.x[i]);
      minY = Math.min(minY, m.y[i]); maxY = Math.max(maxY, m.y[i]);
    }
    var spanX = (maxX - minX) || 1, spanY = (maxY - minY) || 1;
    var W = 0, H = 0, PAD = 28;

    function draw() {
      var dpr = window.devicePixelRatio || 1;
      W = canvas.clientWidth || 900;
      H = Math.round(W * 0.6);
      canvas.width = Math.round(W * dpr);
      canvas.height = Math.round(H * dpr);
      canvas.style.height = H + 'px';
      var ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, W, H);
      // axes
      ctx.strokeStyle = '#e2e8f0';
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(PAD, H - PAD); ctx.lineTo(W - 8, H - PAD);
      ctx.moveTo(PAD, 8); ctx.lineTo(PAD, H - PAD);
      ctx.stroke();
      ctx.fillStyle = '#64748b';
      ctx.font = '12px -apple-system, "Segoe UI", Roboto, Arial, "Liberation Sans", sans-serif';
      ctx.fillText(m.axes[0] || '', PAD + 4, H - 9);
      ctx.save();
      ctx.translate(16, H - PAD - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(m.axes[1] || '', 0, 0);
      ctx.restore();
      var sx = (W - PAD - 20) / spanX, sy = (H - PAD - 20) / spanY;
      var drawn = 0;
      // Group by group, in legend order: real underneath, rejected on top.
      for (var g = 0; g < m.groups.length; g++) {
        if (!visible[g]) continue;
        ctx.fillStyle = m.groups[g].color;
        ctx.globalAlpha = m.groups[g].key === 'real' ? 0.55 : 0.85;
        var r = m.groups[g].key === 'real' ? 2.6 : 3;
        ctx.beginPath();
        for (var k = 0; k < n; k++) {
          if (m.group[k] !== g) continue;
          px[k] = PAD + 10 + (m.x[k] - minX) * sx;
          py[k] = H - PAD - 10 - (m.y[k] - minY) * sy;
          ctx.moveTo(px[k] + r, py[k]);
          ctx.arc(px[k], py[k], r, 0, 2 * Math.PI);
          drawn++;
        }
        ctx.fill();
      }
      ctx.globalAlpha = 1;
      canvas.setAttribute('data-points', String(drawn));
    }

    function nearest(x, y) {
      var best = -1, bestD = 64;   // within 8 px
      for (var k = 0; k < n; k++) {
        if (!visible[m.group[k]]) continue;
        var dx = px[k] - x, dy = py[k] - y, d = dx * dx + dy * dy;
        if (d <= bestD) { bestD = d; best = k; }
      }
      return best;
    }

    canvas.addEventListener('mousemove', function (ev) {
      var box = canvas.getBoundingClientRect();
      var x = ev.clientX - box.left, y = ev.clientY - box.top;
      var k = nearest(x, y);
      if (k < 0) { tip.hidden = true; return; }
      var rec = records[m.record[k]];
      tip.textContent = '';
      tip.appendChild(el('div', 'th', m.groups[m.group[k]].label));
      tip.appendChild(el('div', 'tm', rec.id + ' · ' + rec.source +
        (rec.reasons.length ? ' · ' + rec.reasons.join(', ') : '')));
      tip.appendChild(el('div', '', rec.text.length > 240 ? rec.text.slice(0, 240) + '…' : rec.text));
      tip.hidden = false;
      var left = x + 14, top = y + 14;
      if (left + 380 > box.width) left = Math.max(0, x - 394);
      if (top + tip.offsetHeight > box.height) top = Math.max(0, y - tip.offsetHeight - 10);
      tip.style.left = left + 'px';
      tip.style.top = top + 'px';
    });
    canvas.addEventListener('mouseleave', function () { tip.hidden = true; });
    document.querySelectorAll('.legend input[data-group]').forEach(function (box) {
      box.addEventListener('change', function () {
        visible[Number(box.getAttribute('data-group'))] = box.checked;
        draw();
      });
    });
    window.addEventListener('resize', draw);
    draw();
  }

  // ------------------------------------------------------------------------ rejections
  function setupRejections() {
    var list = document.getElementById('rej-list');
    if (!list) return;
    var rows = data.rejected || [];
    var reasonBox = document.getElementById('rej-reason');
    var qBox = document.getElementById('rej-q');
    var sortBox = document.getElementById('rej-sort');
    var count = document.getElementById('rej-count');
    var pager = document.getElementById('rej-pager');
    var state = {};

    function hasOption(select, value) {
      for (var i = 0; i < select.options.length; i++) {
        if (select.options[i].value === value) return true;
      }
      return false;
    }

    function fromHash() {
      var p = readHash();
      state.reason = p.reason && hasOption(reasonBox, p.reason) ? p.reason : '';
      state.q = p.q || '';
      state.sort = p.sort && hasOption(sortBox, p.sort) ? p.sort : 'order';
      state.page = Math.max(1, parseInt(p.page || '1', 10) || 1);
      reasonBox.value = state.reason;
      qBox.value = state.q;
      sortBox.value = state.sort;
    }

    function matches(row) {
      var rec = records[row.record];
      if (state.reason && rec.reasons.indexOf(state.reason) < 0) return false;
      if (!state.q) return true;
      var q = state.q.toLowerCase();
      var hay = rec.id + '\n' + rec.text;
      if (row.match && row.match.record !== null) {
        var other = records[row.match.record];
        hay += '\n' + other.id + '\n' + other.text;
      } else if (row.match && row.match.ref) {
        hay += '\n' + row.match.ref;
      }
      return hay.toLowerCase().indexOf(q) >= 0;
    }

    function recordBlock(rec, withReasons) {
      var box = el('div', '');
      var head = el('div', 'head');
      head.appendChild(el('span', 'id', rec.id));
      head.appendChild(el('span', 'src', rec.source + (rec.kept ? ', kept' : '')));
      if (withReasons) {
        rec.reasons.forEach(function (code) {
          var info = data.reasons[code];
          var pill = el('span', 'rpill', info ? info.label : code);
          pill.style.background = info ? info.color : '#475569';
          head.appendChild(pill);
        });
      }
      box.appendChild(head);
      return box;
    }

    function fact(name, text, code) {
      var line = el('div', 'fact');
      line.appendChild(el('span', 'fk', name + ': '));
      line.appendChild(el('span', '', text));
      if (code && code !== text) line.appendChild(el('code', '', ' ' + code));
      return line;
    }

    function card(row) {
      var rec = records[row.record];
      var art = el('article', 'rej');
      art.setAttribute('data-reasons', rec.reasons.join(' '));
      art.setAttribute('data-reason', rec.reasons[0] || '');
      art.setAttribute('data-id', rec.id);
      var main = recordBlock(rec, true);
      if (rec.why) main.appendChild(el('div', 'why', rec.why));
      if (row.score !== null && row.score_name) {
        main.appendChild(el('div', 'score', (SCORE_NAMES[row.score_name] || row.score_name) +
          ': ' + fmt(row.score)));
      }
      // Which test matched it, which off-distribution signal fired, which benchmark item it
      // carries (decisions' dup_test, off_distribution_signal, benchmark_match).
      var s = rec.scores || {};
      if (s.dup_test) {
        main.appendChild(fact('matched by', (data.tests || {})[s.dup_test] || s.dup_test,
                              s.dup_test));
      }
      if (s.off_distribution_signal) {
        main.appendChild(fact('signal that fired',
          (data.signals || {})[s.off_distribution_signal] || s.off_distribution_signal,
          s.off_distribution_signal));
      }
      if (s.benchmark_match && !(row.match && row.match.kind === 'benchmark item')) {
        main.appendChild(fact('benchmark item', s.benchmark_match, ''));
      }
      main.appendChild(el('pre', 'text', rec.text || '(no text)'));
      art.appendChild(main);
      var side = el('div', 'side');
      if (row.match) {
        var kind = row.match.kind + (row.match.similarity !== null
          ? ' · similarity ' + fmt(row.match.similarity) : '');
        side.appendChild(el('div', 'kind', kind));
        if (row.match.record !== null) {
          var other = records[row.match.record];
          side.appendChild(recordBlock(other, false));
          side.appendChild(el('pre', 'text', other.text || '(no text)'));
        } else if (row.match.kind === 'benchmark item') {
          side.appendChild(el('code', 'item', row.match.ref || ''));
          side.appendChild(el('div', 'none', 'The evaluation item this record carries ' +
            '(benchmark:item id); the words that matched are quoted in its reason.'));
        } else {
          side.appendChild(el('div', 'none', (row.match.ref || '') + ' (not in this page)'));
        }
      } else {
        side.appendChild(el('div', 'none', rec.reasons[0] === 'invalid'
          ? 'An invalid record is not compared with others.'
          : 'No matched record (not embedded in this run).'));
      }
      art.appendChild(side);
      return art;
    }

    function render() {
      var hits = rows.filter(matches);
      if (state.sort !== 'order') {
        var sign = state.sort === 'score-asc' ? 1 : -1;
        hits = hits.slice().sort(function (a, b) {
          if (a.score === null && b.score === null) return a.record - b.record;
          if (a.score === null) return 1;
          if (b.score === null) return -1;
          return sign * (a.score - b.score) || a.record - b.record;
        });
      }
      var pages = Math.max(1, Math.ceil(hits.length / PAGE));
      state.page = Math.min(state.page, pages);
      var start = (state.page - 1) * PAGE;
      var shown = hits.slice(start, start + PAGE);
      list.textContent = '';
      shown.forEach(function (row) { list.appendChild(card(row)); });
      if (!hits.length) list.appendChild(el('p', 'empty', 'No rejected record matches.'));
      list.setAttribute('data-matching', String(hits.length));
      list.setAttribute('data-shown', String(shown.length));
      count.textContent = hits.length
        ? fmt(hits.length) + ' matching · ' + fmt(start + 1) + '–' + fmt(start + shown.length)
        : '0 matching';
      pager.textContent = '';
      if (pages > 1) {
        var prev = el('button', '', '← Previous');
        prev.type = 'button';
        prev.disabled = state.page <= 1;
        prev.addEventListener('click', function () { go(state.page - 1); });
        var next = el('button', '', 'Next →');
        next.type = 'button';
        next.disabled = state.page >= pages;
        next.addEventListener('click', function () { go(state.page + 1); });
        pager.appendChild(prev);
        pager.appendChild(el('span', 'muted', 'page ' + state.page + ' of ' + pages));
        pager.appendChild(next);
      }
    }

    function go(page) {
      state.page = page;
      sync();
      document.getElementById('rejections').scrollIntoView();
    }

    function sync() {
      var p = readHash();
      writeHash({section: p.section, reason: state.reason, q: state.q,
                 sort: state.sort === 'order' ? '' : state.sort,
                 page: state.page > 1 ? String(state.page) : ''});
      render();
    }

    reasonBox.addEventListener('change', function () {
      state.reason = reasonBox.value; state.page = 1; sync();
    });
    sortBox.addEventListener('change', function () {
      state.sort = sortBox.value; state.page = 1; sync();
    });
    qBox.addEventListener('input', function () {
      state.q = qBox.value; state.page = 1; sync();
    });
    window.addEventListener('hashchange', function () {
      if (location.hash.indexOf('=') < 0) return;
      fromHash();
      render();
      // A link to a filter (the summary's) lands on the list it filters.
      if (!document.body.classList.contains('single')) {
        document.getElementById('rejections').scrollIntoView();
      }
    });
    fromHash();
    render();
  }

  setupMap();
  setupRejections();
  document.body.setAttribute('data-ready', '1');
})();
