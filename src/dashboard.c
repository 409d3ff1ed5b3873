/*
 * dashboard.c - GET /admin/: one self-contained HTML page (inline CSS and
 * vanilla JS, no external resources) that polls the admin API: queue
 * depth by state, send and failure rates, oldest pending age, provider
 * status, the dead-letter list with retry buttons, and a lookup by user
 * or message id with the attempt history. Served on admin listeners only.
 * The page itself carries no data; its fetches go to /v1/admin/ and, over
 * a TCP admin listener, send the admin key typed into the page (kept in
 * sessionStorage; a #key=... fragment fills it). The Content-Security-
 * Policy allows only the page's own inline style and script (by SHA-256)
 * and fetches to 'self'.
 */
#include "autoconf.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"
#include "http.h"
#include "pushrelay.h"
#include "router.h"
#include "server.h"

static const char page_head[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, "
    "initial-scale=1\">\n"
    "<title>pushrelay dashboard</title>\n"
    "<link rel=\"icon\" href=\"data:,\">\n"
    "<style>";

static const char page_style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;"
    "color:#1d2330}"
    "header{background:#1d2330;color:#fff;padding:10px 16px;display:flex;"
    "gap:16px;align-items:center;flex-wrap:wrap}"
    "header h1{font-size:16px;margin:0;flex:1}"
    "header input{width:18em}"
    "main{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,"
    "1fr));gap:16px;padding:16px}"
    "section{background:#fff;border:1px solid #d8dce3;border-radius:6px;"
    "padding:12px 16px}"
    "section.wide{grid-column:1/-1}"
    "h2{font-size:15px;margin:0 0 8px}"
    "table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef2;"
    "vertical-align:top}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".paused{color:#b45309;font-weight:600}.ok{color:#15803d}"
    ".err{color:#b91c1c}.muted{color:#6b7280}"
    "button{cursor:pointer}"
    "pre{white-space:pre-wrap;word-break:break-all;margin:0;font-size:12px}";

static const char page_body[] =
    "</style></head><body>\n"
    "<header><h1>pushrelay</h1>"
    "<label>Admin key <input id=\"key\" type=\"password\" "
    "autocomplete=\"off\" placeholder=\"not needed on the Unix "
    "socket\"></label>"
    "<span id=\"status\" class=\"muted\">loading…</span></header>\n"
    "<main>\n"
    "<section><h2>Queue</h2><table id=\"queue\"><thead><tr><th>State</th>"
    "<th>Jobs</th></tr></thead><tbody></tbody></table>"
    "<p>Oldest pending: <b id=\"oldest\">–</b> · Messages: "
    "<b id=\"messages\">–</b> · Devices: <b id=\"devices\">–</b></p>"
    "</section>\n"
    "<section><h2>Providers</h2><table id=\"providers\"><thead><tr>"
    "<th>Provider</th><th>Status</th><th>Sent</th><th>Failed</th>"
    "<th>Retrying</th><th>Invalid</th><th>Sent/s</th><th>Failed/s</th>"
    "</tr></thead><tbody></tbody></table></section>\n"
    "<section class=\"wide\"><h2>Dead letters</h2>"
    "<p><button id=\"retry-all\">Retry all dead</button> "
    "<span id=\"dead-msg\" class=\"muted\"></span></p>"
    "<table id=\"dead\"><thead><tr><th>Message</th><th>App</th>"
    "<th>User</th><th>Created</th><th>Job</th><th>Device</th>"
    "<th>Attempts</th><th>Last error</th><th></th></tr></thead>"
    "<tbody></tbody></table></section>\n"
    "<section class=\"wide\"><h2>Lookup</h2>"
    "<form id=\"lookup\"><input id=\"q\" placeholder=\"user or message "
    "id\" size=\"40\"> <button type=\"submit\">Find</button></form>"
    "<div id=\"result\"></div></section>\n"
    "</main>\n"
    "<script>";

static const char page_script[] =
    "'use strict';\n"
    "const $=id=>document.getElementById(id);\n"
    "function el(tag,text,cls){const e=document.createElement(tag);"
    "if(text!==undefined&&text!==null)e.textContent=String(text);"
    "if(cls)e.className=cls;return e;}\n"
    "function row(cells){const tr=el('tr');for(const c of cells){"
    "if(c instanceof Node){const td=el('td');td.appendChild(c);"
    "tr.appendChild(td);}else if(typeof c==='number'){"
    "tr.appendChild(el('td',c,'n'));}else tr.appendChild(el('td',"
    "c===null||c===undefined?'':c));}return tr;}\n"
    "function fill(tb,rows){tb.replaceChildren(...rows);}\n"
    "(function(){const m=/^#key=(.+)$/.exec(location.hash);if(m){"
    "sessionStorage.setItem('pr_key',decodeURIComponent(m[1]));"
    "history.replaceState(null,'',location.pathname+location.search);}"
    "$('key').value=sessionStorage.getItem('pr_key')||'';"
    "$('key').addEventListener('change',()=>{"
    "sessionStorage.setItem('pr_key',$('key').value.trim());refresh();});"
    "})();\n"
    "async function api(method,path){const h={'Accept':'application/json'};"
    "const k=sessionStorage.getItem('pr_key');"
    "if(k)h['Authorization']='Bearer '+k;"
    "const r=await fetch(path,{method:method,headers:h,"
    "credentials:'same-origin',cache:'no-store'});let j=null;"
    "try{j=await r.json();}catch(e){}"
    "if(!r.ok){const m=j&&j.error&&j.error.message?j.error.message:"
    "('HTTP '+r.status);throw new Error(m);}return j;}\n"
    "function age(s){s=Number(s)||0;if(s<120)return s+' s';"
    "if(s<7200)return Math.floor(s/60)+' min';if(s<172800)"
    "return Math.floor(s/3600)+' h';return Math.floor(s/86400)+' d';}\n"
    "let prev=null;\n"
    "async function loadStats(){const st=await api('GET',"
    "'/v1/admin/stats');const q=st.queue||{};"
    "fill($('queue').tBodies[0],Object.keys(q).map(k=>{const r=row([k,"
    "Number(q[k])]);r.dataset.state=k;return r;}));"
    "$('oldest').textContent=age(st.oldest_pending_age);"
    "$('messages').textContent=String(st.messages);"
    "$('devices').textContent=String(st.devices);"
    "const now=Date.now()/1000,p=st.providers||{},rows=[];"
    "for(const name of Object.keys(p).sort()){const v=p[name]||{};"
    "let rs='–',rf='–';if(prev&&prev.p[name]&&now>prev.t){"
    "const dt=now-prev.t;rs=((v.sent-prev.p[name].sent)/dt).toFixed(2);"
    "rf=((v.failed-prev.p[name].failed)/dt).toFixed(2);}"
    "const s=el('span',v.paused?'paused':'active',v.paused?'paused':'ok');"
    "const r=row([name,s,Number(v.sent),Number(v.failed),"
    "Number(v.retrying),Number(v.invalid),rs,rf]);r.dataset.provider=name;"
    "rows.push(r);}"
    "if(!rows.length)rows.push(row([el('span','no provider traffic yet',"
    "'muted')]));fill($('providers').tBodies[0],rows);"
    "prev={t:now,p:p};}\n"
    "async function retry(jobId,btn){btn.disabled=true;try{"
    "const r=await api('POST','/v1/admin/pushes/'+encodeURIComponent("
    "jobId)+'/retry');$('dead-msg').textContent='job '+r.job_id+': '+"
    "r.from+' \\u2192 '+r.state;}catch(e){$('dead-msg').textContent="
    "'retry failed: '+e.message;btn.disabled=false;return;}"
    "await refresh();}\n"
    "async function loadDead(){const l=await api('GET',"
    "'/v1/admin/messages?state=dead&limit=50');const rows=[];"
    "for(const m of l.messages||[]){let d=null;try{d=await api('GET',"
    "'/v1/admin/messages/'+encodeURIComponent(m.id)+'?app='+"
    "encodeURIComponent(m.app));}catch(e){}"
    "const pushes=d&&d.pushes?d.pushes.filter(x=>x.state==='dead'):[];"
    "if(!pushes.length){rows.push(row([m.id,m.app,m.user,m.created_at,"
    "'','',Number(m.attempts),'']));continue;}"
    "for(const x of pushes){const b=el('button','Retry');"
    "b.className='retry';b.dataset.job=String(x.job_id);"
    "b.addEventListener('click',()=>retry(x.job_id,b));"
    "const r=row([m.id,m.app,m.user,m.created_at,x.job_id,x.device_id+"
    "' ('+x.platform+')',Number(x.attempts),x.last_reason||(x.last_status"
    "===null?'':String(x.last_status)),b]);r.dataset.job="
    "String(x.job_id);rows.push(r);}}"
    "if(!rows.length)rows.push(row([el('span','no dead pushes','muted')]));"
    "fill($('dead').tBodies[0],rows);}\n"
    "function showMessage(d){const box=el('div');const h=el('h3',"
    "'Message '+d.id);box.appendChild(h);box.appendChild(el('p','app '+"
    "d.app+' · user '+d.user+' · created '+d.created_at+' · expires '+"
    "(d.expires_at||'never')));box.appendChild(el('pre',JSON.stringify("
    "{payload:d.payload,push:d.push},null,1)));"
    "const t=el('table');t.appendChild(row(['Job','Device','State',"
    "'Attempts','At','Provider','Status','Reason','Latency ms']));"
    "for(const x of d.pushes||[]){t.appendChild(row([x.job_id,x.device_id+"
    "' ('+x.platform+')',x.state,Number(x.attempts),'','','',"
    "x.last_reason||'','']));for(const a of x.history||[]){"
    "t.appendChild(row(['','','','',a.at,a.provider,a.status===null?'':"
    "a.status,a.reason||'',a.latency_ms===null?'':a.latency_ms]));}}"
    "box.appendChild(t);return box;}\n"
    "async function lookup(ev){if(ev)ev.preventDefault();"
    "const q=$('q').value.trim();const out=$('result');if(!q)return;"
    "out.replaceChildren(el('p','searching…','muted'));"
    "const parts=[];try{const d=await api('GET','/v1/admin/messages/'+"
    "encodeURIComponent(q));parts.push(showMessage(d));}catch(e){}"
    "try{const l=await api('GET','/v1/admin/messages?limit=20&user='+"
    "encodeURIComponent(q));const ms=l.messages||[];if(ms.length){"
    "parts.push(el('h3','Messages for user '+q));const t=el('table');"
    "t.appendChild(row(['Message','App','Created','Devices','Push state',"
    "'Attempts']));for(const m of ms){const a=el('a',m.id);a.href='#';"
    "a.addEventListener('click',e=>{e.preventDefault();$('q').value=m.id;"
    "lookup();});t.appendChild(row([a,m.app,m.created_at,Number(m.devices),"
    "m.push_state||'',Number(m.attempts)]));}parts.push(t);}}catch(e){"
    "parts.push(el('p','lookup failed: '+e.message,'err'));}"
    "if(!parts.length)parts.push(el('p','nothing found for '+q,'muted'));"
    "out.replaceChildren(...parts);}\n"
    "$('lookup').addEventListener('submit',lookup);\n"
    "$('retry-all').addEventListener('click',async()=>{try{const r="
    "await api('POST','/v1/admin/pushes/retry?state=dead');"
    "$('dead-msg').textContent='requeued '+r.retried;}catch(e){"
    "$('dead-msg').textContent='retry failed: '+e.message;}refresh();});\n"
    "let busy=false;\n"
    "async function refresh(){if(busy)return;busy=true;try{"
    "await loadStats();await loadDead();$('status').textContent="
    "'updated '+new Date().toLocaleTimeString();$('status').className="
    "'muted';document.body.dataset.loaded='1';}catch(e){"
    "$('status').textContent='error: '+e.message;$('status').className="
    "'err';}finally{busy=false;}}\n"
    "refresh();setInterval(refresh,3000);\n";

static const char page_tail[] = "</script></body></html>\n";

static char *page;
static size_t page_len;
static char csp[512];

static int hash_b64(const char *s, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (outlen < 45 ||
	    !EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) || n != 32)
		return PR_ERR_INVAL;
	EVP_EncodeBlock((unsigned char *)out, md, (int)n);
	return PR_OK;
}

static int build_page(void)
{
	char hs[64], hj[64];
	size_t a = strlen(page_head), b = strlen(page_style),
	       c = strlen(page_body), d = strlen(page_script),
	       e = strlen(page_tail);

	if (page)
		return PR_OK;
	if (hash_b64(page_style, hs, sizeof(hs)) ||
	    hash_b64(page_script, hj, sizeof(hj)))
		return PR_ERR_INVAL;
	snprintf(csp, sizeof(csp),
		 "default-src 'none'; style-src 'sha256-%s'; script-src "
		 "'sha256-%s'; connect-src 'self'; img-src 'self' data:; "
		 "base-uri 'none'; form-action 'none'; frame-ancestors "
		 "'none'",
		 hs, hj);
	page = malloc(a + b + c + d + e + 1);
	if (!page)
		return PR_ERR_NOMEM;
	memcpy(page, page_head, a);
	memcpy(page + a, page_style, b);
	memcpy(page + a + b, page_body, c);
	memcpy(page + a + b + c, page_script, d);
	memcpy(page + a + b + c + d, page_tail, e + 1);
	page_len = a + b + c + d + e;
	return PR_OK;
}

static void serve_page(struct pr_request *req, void *arg)
{
	(void)arg;
	pr_response_header(req, "Content-Security-Policy", csp);
	pr_response_header(req, "X-Content-Type-Options", "nosniff");
	pr_response_header(req, "Cache-Control", "no-store");
	pr_response_header(req, "Referrer-Policy", "no-referrer");
	pr_response_header(req, "X-Frame-Options", "DENY");
	pr_respond(req, 200, "text/html; charset=utf-8", page, page_len);
}

static void redirect_page(struct pr_request *req, void *arg)
{
	(void)arg;
	pr_response_header(req, "Location", "/admin/");
	pr_respond(req, 301, NULL, NULL, 0);
}

int pr_dashboard_register(struct pr_server *s)
{
	int rv = build_page();

	if (rv)
		return rv;
	rv |= pr_router_add(s->router, "GET", "/admin/", serve_page, s,
			    PR_ROUTE_ADMIN);
	rv |= pr_router_add(s->router, "GET", "/admin", redirect_page, s,
			    PR_ROUTE_ADMIN);
	return rv ? PR_ERR_NOMEM : PR_OK;
}
