// SecBot demo page: the emulated Slack workspace, driven by the JSON API under /_emulator/.
//
// SECURITY: message text comes from alerts, i.e. from attackers. Nothing here parses HTML:
// every node is made with createElement and filled with textContent / append(string), and the
// server's CSP requires Trusted Types, so an innerHTML assignment would throw.
"use strict";

const API = "/_emulator";
const POLL_MS = 1000;
const ROLES = { U0TRIAGER: "triager", U0VIEWER: "not a triager" };
const ACTIONS = [
  ["white_check_mark", "close"],
  ["x", "false positive"],
  ["eyes", "ack"],
  ["arrows_counterclockwise", "reopen"],
];
const EMOJI = {
  white_check_mark: "✅", heavy_check_mark: "✔️", x: "❌", eyes: "👀",
  arrows_counterclockwise: "🔄", repeat: "🔁", warning: "⚠️", rotating_light: "🚨",
  red_circle: "🔴", large_orange_circle: "🟠", large_yellow_circle: "🟡",
  large_blue_circle: "🔵", large_green_circle: "🟢", white_circle: "⚪", black_circle: "⚫",
  no_entry: "⛔", no_entry_sign: "🚫", lock: "🔒", unlock: "🔓", key: "🔑", shield: "🛡️",
  mag: "🔍", mag_right: "🔎", bell: "🔔", fire: "🔥", bug: "🐛", robot_face: "🤖",
  information_source: "ℹ️", link: "🔗", hourglass: "⌛", hourglass_flowing_sand: "⏳",
  "+1": "👍", thumbsup: "👍", "-1": "👎", thumbsdown: "👎", tada: "🎉", question: "❓",
  exclamation: "❗", heavy_exclamation_mark: "❗", bangbang: "‼️", memo: "📝",
  pushpin: "📌", zap: "⚡", globe_with_meridians: "🌐", computer: "💻", cloud: "☁️",
  email: "📧", bust_in_silhouette: "👤", busts_in_silhouette: "👥", calendar: "📅",
  speech_balloon: "💬", pager: "📟", skull: "💀", stop_sign: "🛑", wave: "👋",
};

const state = {
  channel: decodeURIComponent(location.hash.slice(1)) || "C0SECALERTS",
  user: localStorage.getItem("secbot-demo-user") || "U0TRIAGER",
  users: new Map(), // id → {name, real_name, is_bot}
  version: null,
  items: new Map(), // timeline key → entry (see messageEntry)
  collapsed: new Set(), // thread ts the visitor collapsed
  dismissed: new Set(), // ephemeral keys the visitor dismissed
};

// --- DOM helpers ---------------------------------------------------------------------------

/** Element with attributes (set as attributes/properties, never parsed) and children. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

const $ = (id) => document.getElementById(id);

// --- a small, safe mrkdwn renderer -----------------------------------------------------------

/** Slack escapes exactly these three in text. */
function decode(text) {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

/** :shortcode: → emoji for the ones we know; others stay as typed. */
function emojify(text) {
  return text.replace(/:([a-z0-9_+-]+):/g, (all, name) => EMOJI[name] || all);
}

const plain = (text) => emojify(decode(text));

function userName(id) {
  const user = state.users.get(id);
  return user ? user.real_name || user.name : id;
}

/** <@U…>, <#C…|name>, <!here>, <url|label> → a span showing text (links are never anchors). */
function token(body) {
  const bar = body.indexOf("|");
  const target = bar < 0 ? body : body.slice(0, bar);
  const label = bar < 0 ? "" : body.slice(bar + 1);
  if (target.startsWith("@")) return el("span", { class: "mention", text: "@" + (plain(label) || userName(target.slice(1))) });
  if (target.startsWith("#")) return el("span", { class: "mention", text: "#" + plain(label || target.slice(1)) });
  if (target.startsWith("!")) {
    const special = target.slice(1).split("^")[0];
    return el("span", { class: "mention", text: "@" + plain(label || (special === "subteam" ? "group" : special)) });
  }
  const shown = label || target.replace(/^mailto:/, "");
  return el("span", { class: "link", title: decode(target), text: plain(shown) });
}

const INLINE = new RegExp([
  "<([^<>\\n]+)>", // Slack link / mention
  "`([^`\\n]+)`", // code
  "(?<![\\w*])\\*(?!\\s)([^*\\n]+?)\\*(?![\\w*])", // *bold*
  "(?<!\\w)_(?!\\s)([^_\\n]+?)_(?!\\w)", // _italic_
  "(?<![\\w~])~(?!\\s)([^~\\n]+?)~(?![\\w~])", // ~strike~
].join("|"), "g");

/** Inline mrkdwn of ``text`` appended to ``out`` (returned). */
function inline(text, out) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.append(plain(text.slice(last, m.index)));
    if (m[1] !== undefined) out.append(token(m[1]));
    else if (m[2] !== undefined) out.append(el("code", { text: decode(m[2]) }));
    else {
      const tag = m[3] !== undefined ? "b" : m[4] !== undefined ? "i" : "s";
      out.append(inline(m[3] ?? m[4] ?? m[5], el(tag)));
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) out.append(plain(text.slice(last)));
  return out;
}

const QUOTE = /^(&gt;|>) ?/;

/** Lines, with runs of "> " lines as block quotes. */
function lines(text, root) {
  const all = text.split("\n");
  for (let i = 0; i < all.length;) {
    const quoted = QUOTE.test(all[i]);
    let j = i;
    while (j < all.length && QUOTE.test(all[j]) === quoted) j++;
    const chunk = all.slice(i, j).map((line) => (quoted ? line.replace(QUOTE, "") : line));
    root.append(inline(chunk.join("\n"), el(quoted ? "blockquote" : "span")));
    i = j;
  }
}

/** A mrkdwn string → a <div> of safe nodes (```pre```, quotes, inline formatting). */
function mrkdwn(text) {
  const root = el("div", { class: "mrkdwn" });
  const parts = String(text || "").split("```");
  parts.forEach((part, i) => {
    const fenced = i % 2 === 1 && i < parts.length - 1;
    if (fenced) root.append(el("pre", { text: decode(part.replace(/^\n/, "")) }));
    else lines(i % 2 === 1 ? "```" + part : part, root);
  });
  return root;
}

// --- Block Kit ---------------------------------------------------------------------------------

function textObject(obj) {
  if (!obj || typeof obj.text !== "string") return null;
  return obj.type === "mrkdwn" ? mrkdwn(obj.text) : el("div", { class: "plain", text: plain(obj.text) });
}

/** rich_text (what people type) → plain text: text, mentions, links, emoji. */
function richText(node) {
  if (!node || typeof node !== "object") return "";
  switch (node.type) {
    case "text": return String(node.text || "");
    case "user": return "@" + userName(node.user_id);
    case "channel": return "#" + String(node.channel_id || "");
    case "link": return String(node.text || node.url || "");
    case "emoji": return EMOJI[node.name] || ":" + String(node.name) + ":";
    case "broadcast": return "@" + String(node.range || "");
    default: return (node.elements || []).map(richText).join(node.type === "rich_text_list" ? "\n" : "");
  }
}

function statusLine(block) {
  const text = (block.elements || []).map((e) => e.text || "").join(" ");
  const kind = text.split(/[\s·]/)[0].toLowerCase().replace(/[^a-z-]/g, "");
  return el("div", { class: "status-line status-" + kind, "data-testid": "status-line", "data-status": kind },
    ...(block.elements || []).map(textObject));
}

function section(block) {
  const node = el("div", { class: "section" }, textObject(block.text));
  if (Array.isArray(block.fields)) {
    node.append(el("div", { class: "fields" }, ...block.fields.map((f) => el("div", { class: "field" }, textObject(f)))));
  }
  if (block.accessory && block.accessory.text) node.append(el("span", { class: "button", text: plain(block.accessory.text.text || "") }));
  return node;
}

/** A Block Kit button: clickable on a real message (a ``block_actions`` goes to the bot). */
function buttonView(e, msg) {
  const label = plain((e.text && e.text.text) || e.type || "");
  if (!msg || !msg.ts || e.type !== "button") return el("span", { class: "button", text: label });
  return el("button", {
    type: "button", class: "button" + (e.style ? " " + e.style : ""),
    "data-testid": "button-" + (e.action_id || ""), "data-action": e.action_id || "",
    onclick: () => clickButton(msg, e.action_id),
  }, label);
}

function block(b, msg) {
  if (!b || typeof b !== "object") return null;
  switch (b.type) {
    case "header": return el("div", { class: "header", "data-testid": "block-header", text: plain(b.text ? b.text.text || "" : "") });
    case "section": return section(b);
    case "context":
      if (b.block_id === "secbot_status") return statusLine(b);
      return el("div", { class: "context" }, ...(b.elements || []).map((e) =>
        e.type === "image" ? el("span", { text: "[" + (e.alt_text || "image") + "]" }) : textObject(e)));
    case "divider": return el("hr");
    case "rich_text": return el("div", { class: "mrkdwn", text: richText(b) });
    case "image": return el("div", { class: "context", text: "[image: " + (b.alt_text || "") + "]" });
    case "actions": return el("div", { class: "actions" }, ...(b.elements || []).map((e) => buttonView(e, msg)));
    default: return null;
  }
}

/** Shared images (files.completeUploadExternal), served by the emulator on this origin. */
function fileViews(msg) {
  const out = [];
  for (const f of Array.isArray(msg.files) ? msg.files : []) {
    let url = null;
    try { url = new URL(String(f.url_private || ""), location.href); } catch (_) { continue; }
    if (url.origin !== location.origin || !url.pathname.startsWith("/_files/")) continue;
    out.push(/^image\//.test(String(f.mimetype || ""))
      ? el("img", { class: "file", src: url.pathname, alt: String(f.title || f.name || "file"), "data-testid": "file" })
      : el("div", { class: "context", text: "[file: " + String(f.title || f.name || "") + "]" }));
  }
  return out;
}

function content(msg) {
  const blocks = Array.isArray(msg.blocks) ? msg.blocks : [];
  const body = blocks.length ? el("div", { class: "blocks" }, ...blocks.map((b) => block(b, msg))) : mrkdwn(msg.text);
  const files = fileViews(msg);
  return files.length ? el("div", {}, body, ...files) : body;
}

// --- messages ------------------------------------------------------------------------------------

function clock(ts) {
  const when = new Date(parseFloat(ts) * 1000);
  return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function reactionPills(msg) {
  const row = el("div", { class: "reactions" });
  for (const r of msg.reactions || []) {
    const mine = (r.users || []).includes(state.user);
    row.append(el("button", {
      type: "button", class: "pill" + (mine ? " mine" : ""), "data-testid": "reaction",
      "data-name": r.name, "aria-pressed": mine ? "true" : "false",
      title: (r.users || []).map(userName).join(", ") + " reacted with :" + r.name + ":",
      onclick: () => react(msg.ts, r.name, mine),
    }, (EMOJI[r.name] || ":" + r.name + ":") + " ", el("span", { class: "count", text: String(r.count) })));
  }
  return row;
}

function actionBar(msg) {
  const mine = new Set((msg.reactions || []).filter((r) => (r.users || []).includes(state.user)).map((r) => r.name));
  return el("div", { class: "action-bar" }, ...ACTIONS.map(([name, label]) => el("button", {
    type: "button", class: "action" + (mine.has(name) ? " mine" : ""), "data-testid": "react-" + name,
    title: (mine.has(name) ? "Remove :" : "React with :") + name + ":",
    onclick: () => react(msg.ts, name, mine.has(name)),
  }, EMOJI[name] + " " + label)));
}

/** One message (top level or reply): avatar, author, time, content, reactions. */
function messageView(msg, topLevel) {
  const bot = Boolean(msg.bot_id);
  const author = msg.user_name || userName(msg.user);
  return el("div", { class: "msg" + (bot ? " from-bot" : "") },
    el("div", { class: "avatar" + (bot ? " bot" : ""), "aria-hidden": "true", text: bot ? "🤖" : author.slice(0, 1).toUpperCase() }),
    el("div", { class: "msg-main" },
      el("div", { class: "msg-head" },
        el("span", { class: "author", text: author }),
        bot ? el("span", { class: "app-badge", text: "APP" }) : null,
        el("span", { class: "time", title: msg.ts, text: clock(msg.ts) }),
        msg.edited ? el("span", { class: "edited", text: "(edited)" }) : null),
      el("div", { "data-testid": "message-content" }, content(msg)),
      reactionPills(msg),
      topLevel ? actionBar(msg) : null));
}

function ephemeralKey(e) {
  return "eph:" + e.message_ts;
}

function ephemeralView(e) {
  return el("div", { class: "msg ephemeral", "data-testid": "ephemeral", "data-ts": e.message_ts },
    el("div", { class: "avatar bot", "aria-hidden": "true", text: "🤖" }),
    el("div", { class: "msg-main" },
      el("div", { class: "msg-head" },
        el("span", { class: "author", text: "SecBot" }),
        el("span", { class: "app-badge", text: "APP" }),
        el("span", { class: "time", text: clock(e.message_ts) }),
        el("span", { class: "only-you", text: "Only visible to you" }),
        el("button", { type: "button", class: "dismiss", text: "Dismiss", onclick: () => { state.dismissed.add(ephemeralKey(e)); refresh(true); } })),
      content(e)));
}

/** Keep ``container``'s children in the order of ``items``, creating/updating by key. */
function reconcile(container, items, cache, make, update) {
  const keys = new Set(items.map((item) => item.key));
  for (const [key, entry] of cache) {
    if (!keys.has(key)) { entry.node.remove(); cache.delete(key); }
  }
  let previous = null;
  for (const item of items) {
    let entry = cache.get(item.key);
    if (!entry) { entry = make(item); cache.set(item.key, entry); }
    update(entry, item);
    const expected = previous ? previous.nextSibling : container.firstChild;
    if (expected !== entry.node) container.insertBefore(entry.node, expected);
    previous = entry.node;
  }
}

/** A leaf (reply or ephemeral) whose node is rebuilt only when its data changes. */
function leafEntry() {
  return { node: el("div", { class: "leaf" }), sig: null };
}

function updateLeaf(entry, item) {
  const sig = JSON.stringify(item.data) + "|" + state.user + "|" + state.users.size;
  if (sig === entry.sig) return;
  entry.sig = sig;
  const view = item.kind === "ephemeral" ? ephemeralView(item.data) : messageView(item.data, false);
  if (item.kind !== "ephemeral") { view.setAttribute("data-testid", "reply"); view.setAttribute("data-ts", item.data.ts); }
  entry.node.replaceChildren(view);
}

function composer(channelTs) {
  const input = el("input", { name: "text", "data-testid": "thread-input", placeholder: "Reply in thread: @SecBot alert", "aria-label": "Reply in thread", autocomplete: "off" });
  const form = el("form", { class: "composer thread-composer" }, input, el("button", { type: "submit", "data-testid": "thread-send", text: "Reply" }));
  form.addEventListener("submit", (event) => { event.preventDefault(); mention(input, channelTs); });
  return form;
}

/** A top-level message: its view, a collapsible thread of replies, and a reply box that
 * survives re-renders (so typing is never lost). */
function messageEntry(item) {
  const ts = item.data.ts;
  const body = el("div");
  const toggle = el("button", { type: "button", class: "thread-toggle", "data-testid": "thread-toggle" });
  const replies = el("div", { class: "replies", "data-testid": "replies" });
  toggle.addEventListener("click", () => {
    if (state.collapsed.has(ts)) state.collapsed.delete(ts); else state.collapsed.add(ts);
    refresh(true);
  });
  const thread = el("div", { class: "thread", "data-testid": "thread" }, toggle, replies, composer(ts));
  const node = el("div", { class: "item", "data-testid": "message", "data-ts": ts }, body, thread);
  return { node, body, toggle, replies, cache: new Map(), sig: null };
}

function updateMessage(entry, item) {
  const msg = item.data;
  const sig = JSON.stringify({ ...msg, replies: undefined }) + "|" + state.user + "|" + state.users.size;
  if (sig !== entry.sig) { entry.sig = sig; entry.body.replaceChildren(messageView(msg, true)); }
  const count = (msg.replies || []).length;
  const collapsed = state.collapsed.has(msg.ts);
  entry.toggle.hidden = count === 0;
  entry.toggle.textContent = (collapsed ? "▸ " : "▾ ") + count + (count === 1 ? " reply" : " replies");
  entry.replies.hidden = collapsed;
  const leaves = (msg.replies || []).map((r) => ({ key: r.ts, kind: "reply", data: r, ts: r.ts }))
    .concat(item.ephemeral.map((e) => ({ key: ephemeralKey(e), kind: "ephemeral", data: e, ts: e.message_ts })))
    .sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  reconcile(entry.replies, leaves, entry.cache, leafEntry, updateLeaf);
}

/** The channel's timeline: top-level messages and this user's ephemerals, oldest first. */
function timeline(data) {
  const mine = (data.ephemeral || []).filter((e) => e.user === state.user && !state.dismissed.has(ephemeralKey(e)));
  const tops = new Set(data.messages.map((m) => m.ts));
  const items = data.messages.map((m) => ({
    key: m.ts, kind: "message", data: m, ts: m.ts, ephemeral: mine.filter((e) => e.thread_ts === m.ts),
  }));
  for (const e of mine) {
    if (!e.thread_ts || !tops.has(e.thread_ts)) items.push({ key: ephemeralKey(e), kind: "ephemeral", data: e, ts: e.message_ts });
  }
  return items.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
}

function renderMessages(data) {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const items = timeline(data);
  reconcile(box, items, state.items,
    (item) => (item.kind === "message" ? messageEntry(item) : leafEntry()),
    (entry, item) => (item.kind === "message" ? updateMessage(entry, item) : updateLeaf(entry, item)));
  $("empty").hidden = items.length > 0;
  if (atBottom) box.scrollTop = box.scrollHeight;
}

// --- sidebar, header ---------------------------------------------------------------------------

function renderChannels(channels) {
  const list = $("channels");
  list.replaceChildren(...channels.map((c) => el("li", {},
    el("button", {
      type: "button", class: "channel-link" + (c.id === state.channel ? " active" : ""),
      "data-testid": "channel", "data-id": c.id, onclick: () => selectChannel(c.id),
    }, el("span", { class: "hash", text: "# " }), el("span", { class: "name", text: c.name }),
    el("span", { class: "badge", "data-testid": "channel-count", text: String(c.message_count) })))));
  const current = channels.find((c) => c.id === state.channel);
  $("channel-name").textContent = "# " + (current ? current.name : state.channel);
  $("channel-topic").textContent = current && current.topic ? current.topic : "";
  $("channel-input").placeholder = "Message #" + (current ? current.name : "") + ": @SecBot help";
}

function renderConnection(status) {
  const node = document.querySelector("[data-testid=connection]");
  if (!status) { node.textContent = "⚪ emulator unreachable"; node.className = "connection down"; return; }
  const live = status.connections > 0;
  node.className = "connection " + (live ? "up" : "down");
  node.textContent = (live ? "🟢 SecBot connected" : "🔴 SecBot not connected") +
    ` · ${status.deliveries.acked}/${status.deliveries.total} events acked · ${status.api_calls} API calls`;
}

/** Links to the other stand-ins' pages (PagerDuty incidents, Jira issues): http(s) only. */
function renderLinks(status) {
  const links = (status && Array.isArray(status.links) ? status.links : [])
    .filter((l) => typeof l.url === "string" && /^https?:\/\//.test(l.url));
  const key = JSON.stringify(links);
  const node = document.querySelector("[data-testid=demo-links]");
  if (node.dataset.key === key) return;
  node.dataset.key = key;
  node.replaceChildren(...links.map((l) => el("a", {
    href: l.url, target: "_blank", rel: "noopener noreferrer", "data-testid": "demo-link",
    text: String(l.label || l.url) })));
}

function toast(text) {
  const node = $("toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.hidden = true; }, 4000);
}

// --- API -------------------------------------------------------------------------------------

async function api(path, body) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(API + path, init);
  const data = await response.json();
  if (!data.ok) throw new Error(data.error || "HTTP " + response.status);
  return data;
}

async function react(ts, name, remove) {
  try {
    await api("/react", { user: state.user, reaction: name, channel: state.channel, ts, remove });
  } catch (error) {
    toast("Reaction failed: " + error.message);
  }
  refresh(true);
}

async function clickButton(msg, actionId) {
  try {
    await api("/click", { user: state.user, channel: msg.channel || state.channel, ts: msg.ts, action_id: actionId });
  } catch (error) {
    toast("Click failed: " + error.message);
    return;
  }
  setTimeout(openModals, 800); // a button may open a modal (views.open) for this person
  refresh(true);
}

/** The first modal SecBot opened for the person acting, as a small form. */
async function openModals() {
  let views = [];
  try { views = (await api("/views?user=" + encodeURIComponent(state.user))).views; } catch (_) { return; }
  if (!views.length || document.getElementById("modal")) return;
  const { id, view } = views[0];
  const inputs = [];
  const fields = (view.blocks || []).map((b) => {
    if (b.type !== "input" || !b.element) return block(b, null);
    const area = el("textarea", { "data-testid": "modal-input", rows: "3" });
    inputs.push([b.block_id, b.element.action_id, area]);
    return el("label", { class: "modal-field" }, plain((b.label && b.label.text) || ""), area);
  });
  const close = () => overlay.remove();
  const submit = async () => {
    const values = {};
    for (const [blockId, actionId, area] of inputs) values[blockId] = { [actionId]: area.value };
    try { await api("/submit", { user: state.user, view_id: id, values }); } catch (error) { toast("Submit failed: " + error.message); }
    close();
    refresh(true);
  };
  const overlay = el("div", { id: "modal", class: "modal-overlay", "data-testid": "modal" },
    el("div", { class: "modal" },
      el("div", { class: "modal-title", text: plain((view.title && view.title.text) || "") }),
      ...fields,
      el("div", { class: "modal-buttons" },
        el("button", { type: "button", onclick: close, text: plain((view.close && view.close.text) || "Cancel") }),
        el("button", { type: "button", class: "primary", "data-testid": "modal-submit", onclick: submit, text: plain((view.submit && view.submit.text) || "Submit") }))));
  document.body.append(overlay);
}

async function mention(input, threadTs) {
  const text = input.value.trim();
  if (!text) return;
  try {
    await api("/mention", { user: state.user, text, channel: state.channel, thread_ts: threadTs || null });
    input.value = "";
    if (threadTs) state.collapsed.delete(threadTs);
  } catch (error) {
    toast("Message failed: " + error.message);
  }
  refresh(true);
}

let inflight = null;

/** Fetch channels + messages and render; ``force`` re-renders even at the same version. */
function refresh(force) {
  if (force) state.version = null;
  if (!inflight) {
    inflight = load().catch(() => renderConnection(null)).finally(() => { inflight = null; });
  }
  return inflight;
}

async function load() {
  const channel = state.channel;
  const [channels, data] = await Promise.all([
    api("/channels"), api("/messages?channel=" + encodeURIComponent(channel)),
  ]);
  if (channel !== state.channel) return load(); // switched channel meanwhile
  renderChannels(channels.channels);
  renderMessages(data);
  state.version = data.version;
}

async function poll() {
  try {
    const status = await api("/status");
    renderConnection(status);
    renderLinks(status);
    if (status.version !== state.version) await refresh(false);
  } catch (error) {
    renderConnection(null);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function selectChannel(id) {
  if (id === state.channel) return;
  state.channel = id;
  history.replaceState(null, "", "#" + encodeURIComponent(id));
  state.items.clear();
  $("messages").replaceChildren();
  refresh(true); // an empty list counts as scrolled to the bottom: new messages stay in view
}

async function start() {
  try {
    for (const u of (await api("/users")).users) state.users.set(u.id, u);
  } catch (error) {
    toast("Could not load users: " + error.message);
  }
  const picker = $("user-picker");
  const humans = [...state.users.values()].filter((u) => !u.is_bot);
  if (humans.length) {
    picker.replaceChildren(...humans.map((u) => el("option", { value: u.id, text: u.name + (ROLES[u.id] ? " — " + ROLES[u.id] : "") })));
  }
  if (![...picker.options].some((o) => o.value === state.user)) state.user = picker.options[0].value;
  picker.value = state.user;
  picker.addEventListener("change", () => {
    state.user = picker.value;
    localStorage.setItem("secbot-demo-user", state.user);
    refresh(true);
  });
  $("channel-composer").addEventListener("submit", (event) => { event.preventDefault(); mention($("channel-input"), null); });
  poll();
}

document.addEventListener("DOMContentLoaded", start);
