// The dashboard page: the run's state from the server's event stream (/events), drawn with
// echarts. Redraws at most once per animation frame, however fast rounds arrive.
/* global echarts, EventSource, document, window, requestAnimationFrame */
(() => {
  const peers = new Map(); // id -> { status, rounds: [], bytes }
  let totalRounds = null;
  let finished = null;
  let dirty = false;

  const charts = {
    loss: echarts.init(document.getElementById('loss')),
    accuracy: echarts.init(document.getElementById('accuracy')),
    roundTime: echarts.init(document.getElementById('roundTime')),
  };
  const axes = (title, y) => ({
    title: { text: title, left: 'center', textStyle: { fontSize: 13 } },
    tooltip: { trigger: 'axis' },
    legend: { bottom: 0 },
    grid: { left: 56, right: 16, top: 36, bottom: 48 },
    xAxis: { type: 'value', name: 'round', nameLocation: 'middle', nameGap: 24, minInterval: 1 },
    yAxis: { type: 'value', name: y, scale: true },
    animation: false,
  });

  const peer = (id) => {
    if (!peers.has(id)) peers.set(id, { status: null, rounds: [], bytes: 0 });
    return peers.get(id);
  };
  const fmt = (x, digits) => (x === null || x === undefined ? '-' : Number(x).toFixed(digits));
  const bytes = (n) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MB` : `${(n / 1024).toFixed(0)} KB`);

  function addRound(r) {
    const p = peer(r.peer);
    p.rounds.push(r);
    p.bytes += r.bytesReceived;
  }

  function draw() {
    dirty = false;
    const ids = [...peers.keys()].sort();
    document.getElementById('title').textContent = `· ${ids.length} peer${ids.length === 1 ? '' : 's'}${totalRounds ? ` · ${totalRounds} rounds` : ''}`;
    const rows = ids.map((id) => {
      const p = peers.get(id), s = p.status;
      const last = p.rounds[p.rounds.length - 1];
      const round = Math.max(s ? s.round : 0, last ? last.round + 1 : 0);
      const tr = document.createElement('tr');
      tr.dataset.peer = id;
      tr.dataset.round = String(round);
      if (s && s.phase === 'failed') tr.className = 'failed';
      const cells = [id, s ? s.phase : '-', totalRounds ? `${round}/${totalRounds}` : String(round), s ? s.inFlight : '-',
        fmt(s && s.loss !== null ? s.loss : last && last.loss, 4),
        s && s.validationAccuracy !== null ? `${(s.validationAccuracy * 100).toFixed(2)}%` : '-', bytes(p.bytes)];
      cells.forEach((c, i) => {
        const td = document.createElement('td');
        if (i === 1) td.className = 'phase';
        td.textContent = String(c);
        if (i === 1 && s && s.error) td.title = s.error;
        tr.appendChild(td);
      });
      return tr;
    });
    document.getElementById('peers').replaceChildren(...rows);

    const series = (pick, type) => ids.map((id) => ({
      name: id, type, showSymbol: type === 'scatter', symbolSize: 6,
      data: peers.get(id).rounds.filter((r) => pick(r) !== null && pick(r) !== undefined).map((r) => [r.round, pick(r)]),
    }));
    const loss = series((r) => r.loss, 'line');
    charts.loss.setOption({ ...axes('training loss', 'loss'), series: loss }, true);
    charts.accuracy.setOption({ ...axes('validation accuracy', 'accuracy'), series: series((r) => r.validationAccuracy, 'line').map((x) => ({ ...x, showSymbol: true })) }, true);
    charts.roundTime.setOption({ ...axes('round time', 'ms'), series: series((r) => r.roundMs, 'line') }, true);
    // For scripts and tests: how many loss points are drawn.
    document.body.dataset.lossPoints = String(loss.reduce((n, s) => n + s.data.length, 0));
  }
  const redraw = () => { if (!dirty) { dirty = true; requestAnimationFrame(draw); } };

  function log(line) {
    const box = document.getElementById('log');
    const div = document.createElement('div');
    div.textContent = `${new Date(line.at).toLocaleTimeString()}  ${line.msg}`;
    box.appendChild(div);
    box.scrollTop = box.scrollHeight;
  }
  function setState() {
    const el = document.getElementById('state');
    if (finished) {
      el.textContent = finished.how;
      el.className = finished.failed ? 'failed' : 'done';
    } else {
      el.textContent = 'training';
      el.className = '';
    }
  }

  const events = new EventSource('/events');
  events.addEventListener('snapshot', (e) => {
    const s = JSON.parse(e.data);
    peers.clear();
    for (const st of s.statuses) peer(st.id).status = st;
    for (const r of s.rounds) addRound(r);
    document.getElementById('log').replaceChildren();
    for (const l of s.logs) log(l);
    totalRounds = s.totalRounds;
    finished = s.finished;
    setState();
    redraw();
  });
  events.addEventListener('status', (e) => { const s = JSON.parse(e.data); peer(s.id).status = s; redraw(); });
  events.addEventListener('round', (e) => { addRound(JSON.parse(e.data)); redraw(); });
  events.addEventListener('log', (e) => log(JSON.parse(e.data)));
  events.addEventListener('plan', (e) => { totalRounds = JSON.parse(e.data).totalRounds; redraw(); });
  events.addEventListener('finish', (e) => { finished = JSON.parse(e.data); setState(); redraw(); });
  events.onerror = () => {
    // The run ended and the CLI closed the server: keep what is drawn, and say so.
    if (events.readyState === EventSource.CLOSED || finished) {
      events.close();
      if (!finished) document.getElementById('state').textContent = 'disconnected: the run ended or the CLI stopped';
    }
  };
  window.addEventListener('resize', () => Object.values(charts).forEach((c) => c.resize()));
})();
