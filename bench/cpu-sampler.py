#!/usr/bin/env python3
# bench/cpu-sampler.py OUT: every 0.5 s, CPU (cores) and run delay (cores waiting, the threads' schedstat)
# per process kind (busy loops, wireguard-go per interface, iperf3, our engine, other node) as JSON lines,
# and each engine's or daemon's main thread apart ('main': pid -> [cores run, cores waiting]).
# Run beside a bench (bench/RESULTS.md, "The pool sender"); stop it with a signal.
import os, time, sys, json
HZ = os.sysconf('SC_CLK_TCK')
main = {}
def procs():
    out = {}
    for p in os.listdir('/proc'):
        if not p.isdigit(): continue
        try:
            cmd = open(f'/proc/{p}/cmdline','rb').read().replace(b'\0',b' ').decode(errors='replace')
            st = open(f'/proc/{p}/stat').read().rsplit(')',1)[1].split()
            cpu = (int(st[11]) + int(st[12])) / HZ
            delay = 0
            if ('engine' in cmd or ' up ' in cmd) and 'node' in cmd:
                # an engine's or the daemon's (`awg up`) own thread (the main one): CPU and run delay,
                # what src/dataplane/starved.ts weighs
                r, w = open(f'/proc/{p}/task/{p}/schedstat').read().split()[:2]
                main[p] = (int(r) / 1e9, int(w) / 1e9)
            for t in os.listdir(f'/proc/{p}/task'):
                try: delay += int(open(f'/proc/{p}/task/{t}/schedstat').read().split()[1]) / 1e9
                except Exception: pass
        except Exception: continue
        if 'while :' in cmd: name = 'loop'
        elif 'wireguard-go' in cmd: name = 'wg-go:' + cmd.split()[-1]
        elif 'iperf3' in cmd: name = 'iperf3' + (':s' if ' -s' in cmd else ':c')
        elif 'engine' in cmd and 'node' in cmd: name = 'engine'
        elif 'node' in cmd: name = 'node-other'
        else: name = 'other'
        out[p] = (name, cpu, delay)
    return out
f = open(sys.argv[1], 'w')
prev = procs(); mprev = dict(main); main.clear(); t0 = time.time(); tp = t0
while True:
    time.sleep(0.5)
    cur = procs(); t = time.time(); dt = t - tp
    agg = {}
    for p,(n,c,d) in cur.items():
        if p in prev:
            a = agg.setdefault(n, [0,0]); a[0] += (c - prev[p][1]) / dt; a[1] += (d - prev[p][2]) / dt
    eng = {p: [round((v[0] - mprev[p][0]) / dt, 2), round((v[1] - mprev[p][1]) / dt, 2)] for p, v in main.items() if p in mprev}
    f.write(json.dumps({'t': round(t - t0, 2), 'cpu': {k: [round(v[0],2), round(v[1],2)] for k,v in agg.items() if v[0] > 0.02 or v[1] > 0.02}, 'main': eng}) + '\n'); f.flush()
    prev, tp = cur, t
    mprev = dict(main); main.clear()
