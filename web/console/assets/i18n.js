// Every text the console shows, in English and Chinese, from one table (the Chinese follows the
// terminal UI's wording where the meaning is the same). `missing()` lists keys lacking a
// language: the browser test imports this module and fails on any.

const KEY = 'codex-helper-console-lang';

export const TEXTS = {
  page_overview: ['Overview', '总览'],
  page_routing: ['Routing', '路由'],
  page_sessions: ['Sessions', '会话'],
  page_requests: ['Requests', '请求'],
  page_usage: ['Usage', '用量'],
  page_diagnostics: ['Diagnostics', '诊断'],
  language: ['Language', '语言'],
  skip_to_content: ['Skip to content', '跳到正文'],
  time_zone: ['time zone', '时区'],
  waiting: ['waiting for the running helper…', '正在等待运行中的 helper…'],
  stale_data: ['not updated for a while', '数据已有一段时间未更新'],
  fetch_failed: ['cannot read the running helper', '无法读取运行中的 helper'],
  unreachable: ['the helper does not answer', 'helper 没有响应'],
  action_failed: ['failed', '失败'],
  running: ['running…', '运行中…'],
  token_title: ['Admin token', '管理令牌'],
  token_needed: ['This helper answers only with its admin token (CODEX_HELPER_ADMIN_TOKEN). It is kept for this browser tab only.', '此 helper 仅在提供管理令牌（CODEX_HELPER_ADMIN_TOKEN）时响应。令牌只保存在当前浏览器标签页中。'],
  token_wrong: ['The helper refused this token. Enter it again.', 'helper 拒绝了该令牌，请重新输入。'],
  token_label: ['Token', '令牌'],
  token_submit: ['Continue', '继续'],
  window: ['window', '时间窗口'],
  requests: ['requests', '请求数'],
  request: ['Request', '请求'],
  errors: ['errors', '错误'],
  error: ['error', '错误'],
  tokens: ['tokens', '令牌数'],
  cost: ['cost', '费用'],
  input: ['input', '输入'],
  output: ['output', '输出'],
  success_rate: ['success', '成功率'],
  latency: ['Duration p50 / p95', '耗时 p50 / p95'],
  latency_recent: ['duration (recent)', '耗时（最近）'],
  ttfb: ['Time to first byte p50 / p95', '首字节时间 p50 / p95'],
  ttfb_recent: ['TTFB (recent)', '首字节（最近）'],
  in_flight: ['in flight', '进行中'],
  endpoints_routable: ['endpoints routable', '可路由端点'],
  status_recent: ['429s / 5xx (recent)', '429 / 5xx 次数（最近）'],
  none_in_flight: ['no request in flight', '当前没有进行中的请求'],
  last_finished: ['last finished', '最近完成'],
  ledger_written: ['ledger rows written', '已写入账本行数'],
  per_minute: ['per minute', '每分钟'],
  per_15min: ['per 15 minutes', '每 15 分钟'],
  per_day: ['per day', '每天'],
  n_requests: ['{0} requests', '{0} 个请求'],
  n_minutes: ['{0} min', '{0} 分钟'],
  col_time: ['time', '时间'],
  col_started: ['started', '开始时间'],
  col_model: ['model', '模型'],
  col_provider: ['provider/endpoint', '供应商/端点'],
  col_provider_only: ['provider', '供应商'],
  provider: ['provider', '供应商'],
  col_session: ['session', '会话'],
  col_path: ['request', '请求'],
  col_elapsed: ['elapsed', '已用时间'],
  col_status: ['status', '状态码'],
  col_tokens: ['tokens', '令牌数'],
  col_ttfb: ['TTFB', '首字节'],
  col_duration: ['duration', '耗时'],
  col_endpoint: ['endpoint', '端点'],
  col_host: ['host', '主机'],
  col_tags: ['tags', '标签'],
  col_state: ['state', '状态'],
  col_reason: ['why', '原因'],
  col_actions: ['actions', '操作'],
  col_goes_to: ['goes to', '去向'],
  col_last_used: ['last used', '最近使用'],
  col_req: ['req', '请求'],
  col_err: ['err', '错误'],
  col_overrides: ['overrides', '覆盖'],
  col_group: ['group', '分组'],
  col_route_path: ['route path', '路由路径'],
  col_n: ['#', '序号'],
  col_outcome: ['outcome', '结果'],
  col_class: ['class', '类别'],
  col_detail: ['detail', '详情'],
  col_balance: ['balance', '余额'],
  col_plan: ['plan', '套餐'],
  col_checked: ['checked', '查询时间'],
  col_probe: ['probe', '探测项'],
  col_support: ['support', '支持情况'],
  col_sent: ['sent', '发送内容'],
  col_preset: ['preset', '预设'],
  col_fit: ['fit', '适配'],
  col_needs: ['needs', '需要'],
  col_kind: ['kind', '类型'],
  col_summary: ['summary', '摘要'],
  route_graph: ['Route graph', '路由图'],
  endpoints: ['endpoints', '端点'],
  n_endpoints: ['{0} endpoint(s)', '{0} 个端点'],
  entry: ['entry', '入口'],
  entry_node: ['Entry route (config file)', '入口路由（配置文件）'],
  entry_help: ['Pin or reorder the entry node in the config file (format kept, .bak beside it); the helper reloads it.', '在配置文件中固定入口节点或调整其顺序（保留格式，旁边留有 .bak 备份）；helper 会重新加载。'],
  affinity_policy: ['affinity policy', '亲和策略'],
  graph_key: ['graph key', '路由图标识'],
  fallback_ttl: ['fallback TTL (ms)', '回退保持时间（毫秒）'],
  config_file: ['config', '配置文件'],
  routable: ['routable', '可路由'],
  no_endpoints: ['no endpoints configured', '尚未配置端点'],
  skipped: ['skipped', '已跳过'],
  ep_disabled: ['switched off', '已停用'],
  ep_draining: ['draining', '排空中'],
  ep_normal: ['switched on', '已启用'],
  until: ['until', '直到'],
  switch_for: ['switch off or drain for', '停用或排空时长'],
  until_switched_back: ['until switched back', '直到手动恢复'],
  act_disable: ['Disable', '停用'],
  act_enable: ['Enable', '启用'],
  act_drain: ['Drain', '排空'],
  pin: ['Pin', '固定'],
  pin_confirm: ['Press again to pin {0}', '再按一次以固定到 {0}'],
  pinned_in_config: ['entry route pinned in the config file', '已在配置文件中固定入口路由'],
  move_up: ['move up', '上移'],
  move_down: ['move down', '下移'],
  save_order: ['Save order', '保存顺序'],
  order_saved: ['order saved in the config file', '顺序已保存到配置文件'],
  no_route: ['no endpoint can take a request now', '当前没有可用端点'],
  sessions_none: ['no sessions yet: one appears once Codex sends a request through the helper', '暂无会话：Codex 经由 helper 发出请求后会出现'],
  sessions_none_match: ['no session matches the filters', '没有符合筛选条件的会话'],
  filter_overrides: ['overrides only', '仅有覆盖'],
  filter_errors: ['errors only', '仅错误'],
  last_24h_note: ['req/err/tokens/cost: last 24 h', '请求/错误/令牌/费用：最近 24 小时'],
  not_bound: ['not bound yet', '尚未绑定'],
  earlier_config: ['bound under an earlier config', '绑定于旧配置'],
  overrides_none: ['no overrides', '无覆盖'],
  overrides: ['Overrides', '覆盖'],
  ov_model: ['model', '模型'],
  ov_effort: ['reasoning effort', '推理强度'],
  ov_tier: ['service tier', '服务档位'],
  ov_pin: ['pinned to', '固定到'],
  ov_profile: ['profile', '配置'],
  ovs_model: ['model:', '模型:'],
  ovs_effort: ['effort:', '推理:'],
  ovs_tier: ['tier:', '档位:'],
  ovs_pin: ['pin:', '固定:'],
  ovs_profile: ['profile:', '配置:'],
  set: ['Set', '设置'],
  clear: ['Clear', '清除'],
  apply: ['Apply', '应用'],
  no_profile: ['no profile (removes it)', '不使用配置（移除）'],
  reset_all: ['Reset all overrides', '重置全部覆盖'],
  reset_confirm: ['Press again to reset every override', '再按一次以重置全部覆盖'],
  session_updated: ['session updated', '会话已更新'],
  override_cleared: ['override cleared', '覆盖已清除'],
  overrides_reset: ['every override reset', '全部覆盖已重置'],
  profile_removed: ['profile removed', '配置已移除'],
  binding: ['Binding and next request', '绑定与下一个请求'],
  bound_to: ['bound to', '绑定到'],
  last_used: ['last used', '最近使用'],
  binding_changed: ['binding changed', '绑定变更'],
  next_goes_to: ['a request now goes to', '新请求将发往'],
  continuity: ['continuity', '连续性'],
  continuity_broken: ['broken: the next request cannot reach the relay holding its state', '已中断：下一个请求无法到达保存其状态的中转'],
  candidates: ['candidates', '候选端点'],
  chosen: ['chosen', '已选中'],
  requests_over_time: ['Requests over time', '请求时间线'],
  no_requests: ['no requests yet', '暂无请求'],
  filters: ['Filters', '筛选'],
  all: ['all', '全部'],
  errors_only: ['errors only', '仅错误'],
  filter: ['Filter', '筛选'],
  attempts: ['Attempts', '尝试'],
  route_decision: ['Route decision', '路由决策'],
  no_decision: ['no route decision was recorded', '没有记录路由决策'],
  request_unknown: ['the ledger has no request with this trace id', '账本中没有此追踪 ID 的请求'],
  why: ['why', '原因'],
  affinity: ['affinity', '亲和'],
  relay_bound: ['relay-bound state', '绑定中转的状态'],
  yes: ['yes', '是'],
  no: ['no', '否'],
  usage_title: ['Requests, tokens and cost', '请求、令牌与费用'],
  by_provider: ['by provider', '按供应商'],
  burn_last_hour: ['last hour', '最近一小时'],
  until_midnight: ['until midnight', '到午夜'],
  unpriced: ['unpriced', '未定价'],
  balances: ['Balances', '余额'],
  attention_only: ['attention only', '仅需关注'],
  nothing_needs_attention: ['nothing needs attention', '没有需要关注的项目'],
  all_providers: ['all providers', '全部供应商'],
  refresh_balances: ['Refresh balances', '刷新余额'],
  refresh_result: ['balances looked up: {0} endpoint(s), {1} refreshed, {2} failed, {3} without a token', '余额已刷新：{0} 个端点，{1} 个已更新，{2} 个失败，{3} 个没有令牌'],
  no_balances: ['no balances yet (Refresh looks them up)', '暂无余额（点击刷新查询）'],
  money_left: ['money left', '剩余金额'],
  burn_rate: ['spend rate', '消耗速度'],
  lasts: ['lasts', '可用时长'],
  confidence: ['confidence', '置信度'],
  forecast: ['Forecast', '预测'],
  no_forecast: ['no amount known: no forecast', '金额未知：无法预测'],
  amounts_carried: ['last known amounts (carried)', '沿用上次的金额'],
  display_only: ['display only: exhaustion never moves routing', '仅供显示：耗尽不会影响路由'],
  state_ok: ['ok', '正常'],
  state_unlimited: ['unlimited', '不限额'],
  state_unknown: ['unknown', '未知'],
  state_stale: ['stale', '已过期'],
  state_exhausted: ['exhausted', '已耗尽'],
  state_error: ['error', '错误'],
  verdicts: ['Relay capabilities', '中转能力'],
  runtime: ['The running helper', '运行中的 helper'],
  version: ['version', '版本'],
  pid: ['pid', '进程号'],
  uptime: ['uptime', '运行时长'],
  preset: ['Codex preset', 'Codex 预设'],
  proxy_address: ['proxy', '代理地址'],
  ledger: ['ledger', '账本'],
  ledger_counts: ['{0} rows written, {1} failed, {2} dropped', '已写入 {0} 行，失败 {1}，丢弃 {2}'],
  reload_config: ['Reload the config', '重新加载配置'],
  reloaded: ['config reloaded', '配置已重新加载'],
  reload_failed: ['reload failed', '重新加载失败'],
  probe_help: ['Probes relays for what Codex needs and recommends a preset; nothing is spent. Takes seconds.', '探测中转是否具备 Codex 所需的能力并推荐预设；不产生费用，需数秒。'],
  run_probe: ['Run the probe', '运行探测'],
  probe_done: ['probe finished', '探测完成'],
  probe_image: ['also probe image generation', '同时探测图像生成'],
  preset_current: ['(the one in force)', '（当前生效的）'],
  compaction: ['compaction', '压缩方式'],
  timeout_s: ['timeout (s)', '超时（秒）'],
  recommendation: ['recommended preset', '推荐预设'],
  no_preset: ['none', '无'],
  probes: ['probes', '探测项'],
  presets: ['presets', '预设'],
  evidence: ['Evidence', '证据记录'],
  no_evidence: ['no evidence records yet', '暂无证据记录'],
};

let current = null;

/** The language in force: the one chosen before, else the browser's. */
export function lang() {
  if (current) return current;
  let saved = null;
  try {
    saved = localStorage.getItem(KEY);
  } catch {
    saved = null;
  }
  const nav = typeof navigator !== 'undefined' ? navigator.language || '' : '';
  current = saved === 'en' || saved === 'zh' ? saved : nav.toLowerCase().startsWith('zh') ? 'zh' : 'en';
  return current;
}

export function setLang(l) {
  current = l === 'zh' ? 'zh' : 'en';
  try {
    localStorage.setItem(KEY, current);
  } catch {
    /* not kept */
  }
}

/** A text in the language in force; {0}, {1}… are replaced by the arguments. */
export function t(key, ...args) {
  const pair = TEXTS[key];
  if (!pair) return key;
  const text = pair[lang() === 'zh' ? 1 : 0];
  return args.length ? text.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)])) : text;
}

/** Keys lacking a text in either language (the test wants none). */
export function missing() {
  return Object.entries(TEXTS)
    .filter(([, v]) => !Array.isArray(v) || v.length !== 2 || !v[0]?.trim() || !v[1]?.trim() || v[0] === v[1])
    .map(([k]) => k);
}

/** The static texts of the page (elements with data-i18n). */
export function applyStatic() {
  document.documentElement.lang = lang() === 'zh' ? 'zh-CN' : 'en';
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
}
