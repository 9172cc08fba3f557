//! Every string the terminal UI shows, in English and Chinese, from one table: a message
//! cannot be added with only one language, and the test below checks that none was left
//! untranslated.

/// The language the UI speaks; `L` switches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// The other language.
    pub fn toggled(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }
}

/// Defines [`Msg`], its list of all variants and its two texts in one place, so the list the
/// test walks cannot miss a message.
macro_rules! messages {
    ($($name:ident => $en:literal, $zh:literal;)*) => {
        /// A user-visible message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Msg { $($name),* }

        impl Msg {
            /// Every message (for the completeness test).
            pub const ALL: &'static [Msg] = &[$(Msg::$name),*];

            /// `(English, Chinese)`.
            fn texts(self) -> (&'static str, &'static str) {
                match self { $(Msg::$name => ($en, $zh)),* }
            }
        }
    };
}

messages! {
    AppName => "codex-helper", "codex-helper 控制台";
    PageDashboard => "Dashboard", "总览";
    PageRouting => "Routing", "路由";
    PageSessions => "Sessions", "会话";
    PageRequests => "Requests", "请求";
    PageUsage => "Usage", "用量";
    PageSettings => "Settings", "设置";
    Waiting => "waiting for the running helper…", "正在等待运行中的 helper…";
    Requests => "requests", "请求数";
    SuccessRate => "success", "成功率";
    P95 => "p95 duration (recent)", "p95 耗时（最近）";
    Status429 => "429s (recent)", "429 次数（最近）";
    Status5xx => "5xx (recent)", "5xx 次数（最近）";
    EndpointsRoutable => "endpoints routable", "可路由端点";
    Window => "window", "时间窗口";
    Tokens => "tokens", "令牌数";
    Cost => "cost", "费用";
    Errors => "errors", "错误";
    NextRequestGoesTo => "a request now goes to", "新请求将发往";
    NoRoute => "no endpoint can take a request now", "当前没有可用端点";
    ColEndpoint => "endpoint", "端点";
    ColHost => "host", "主机";
    ColState => "state", "状态";
    Routable => "routable", "可路由";
    Skipped => "skipped", "已跳过";
    NoEndpoints => "no endpoints configured", "尚未配置端点";
    RoutingKeys => "Up/Down j/k PgUp/PgDn select  e enable  x disable 30 min  P P pin", "上/下 j/k PgUp/PgDn 选择  e 启用  x 停用 30 分钟  P P 固定";
    PressPAgain => "press P again to pin the entry route in the config file to", "再按一次 P 以在配置文件中将入口路由固定到";
    PinnedInConfig => "entry route pinned in the config file", "已在配置文件中固定入口路由";
    SessionsWaiting => "reading the sessions…", "正在读取会话…";
    SessionsNone => "no sessions yet: one appears once Codex sends a request through the helper", "暂无会话：Codex 经由 helper 发出请求后会出现";
    SessionsNoneMatch => "no session matches the filters (v and e switch them)", "没有符合筛选条件的会话（v 和 e 切换筛选）";
    SessionsFailed => "cannot read the sessions", "无法读取会话";
    AllSessions => "all sessions (filters: v, e)", "全部会话（筛选：v、e）";
    FilterOverrides => "overrides only (v)", "仅有覆盖（v）";
    FilterSessionErrors => "errors only (e)", "仅错误（e）";
    Last24h => "req/err/tokens/cost: last 24 h", "请求/错误/令牌/费用：最近 24 小时";
    ColSession => "session", "会话";
    ColGoesTo => "goes to", "去向";
    ColLastUsed => "last used", "最近使用";
    ColReq => "req", "请求";
    ColErr => "err", "错误";
    ColOverrides => "overrides", "覆盖";
    NotBound => "not bound yet", "尚未绑定";
    EarlierConfig => "bound under an earlier config", "绑定于旧配置";
    Ago => " ago", "前";
    ChangeReason => "binding changed", "绑定变更";
    OverridesNone => "no overrides", "无覆盖";
    OvModel => "model", "模型";
    OvEffort => "reasoning effort", "推理强度";
    OvTier => "service tier", "服务档位";
    OvPin => "pinned to", "固定到";
    OvProfile => "profile", "配置";
    OvShortModel => "model:", "模型:";
    OvShortEffort => "effort:", "推理:";
    OvShortTier => "tier:", "档位:";
    OvShortPin => "pin:", "固定:";
    OvShortProfile => "profile:", "配置:";
    SessionKeys => "l/m/h/X effort  x clear effort  b profile  p pin  P unpin  R R reset all", "l/m/h/X 推理强度  x 清除强度  b 配置  p 固定  P 取消固定  R R 全部重置";
    NoSessionSelected => "no session is selected", "未选择会话";
    PressRAgain => "press R again to reset every override of", "再按一次 R 以重置以下会话的全部覆盖";
    PickPin => "pin to (Enter pins, Esc cancels)", "固定到（Enter 固定，Esc 取消）";
    PickProfile => "profile (b/Down next, Enter applies, Esc cancels)", "配置（b/下 下一个，Enter 应用，Esc 取消）";
    AnyEndpoint => "any of its endpoints", "其任一端点";
    NoProfileChoice => "no profile (removes it)", "不使用配置（移除）";
    NoTargets => "no route targets: no endpoints are configured", "没有可固定的目标：尚未配置端点";
    NoProfiles => "no profiles are configured", "尚未配置任何配置档";
    ProfilesUnreadable => "cannot read the profiles", "无法读取配置档";
    SessionUpdated => "session updated", "会话已更新";
    EffortCleared => "reasoning effort cleared", "推理强度已清除";
    PinCleared => "pin removed", "已取消固定";
    OverridesReset => "every override reset", "全部覆盖已重置";
    ProfileRemoved => "profile removed", "配置已移除";
    ColTime => "time", "时间";
    ColModel => "model", "模型";
    ColProvider => "provider/endpoint", "供应商/端点";
    ColStatus => "status", "状态码";
    ColTtfb => "TTFB", "首字节";
    NoRequests => "no requests yet", "暂无请求";
    RequestsKeys => "Up/Down j/k PgUp/PgDn move", "上/下 j/k PgUp/PgDn 移动";
    ErrorsOnly => "errors only (f)", "仅错误（f）";
    AllRequests => "all requests (f: errors only)", "全部请求（f：仅错误）";
    Balances => "balances", "余额";
    ColBalance => "balance", "余额";
    NoBalances => "no balances yet (g looks them up)", "暂无余额（按 g 查询）";
    AttentionOn => "attention only (a)", "仅需关注（a）";
    UsageKeys => "g refresh balances  d window  a attention  PgUp/PgDn scroll", "g 刷新余额  d 切换窗口  a 关注筛选  PgUp/PgDn 滚动";
    StateOk => "ok", "正常";
    StateUnlimited => "unlimited", "不限额";
    StateUnknown => "unknown", "未知";
    StateStale => "stale", "已过期";
    StateExhausted => "exhausted", "已耗尽";
    StateError => "error", "错误";
    Version => "version", "版本";
    Pid => "pid", "进程号";
    Uptime => "uptime", "运行时长";
    ConfigPath => "config", "配置文件";
    Preset => "Codex preset", "Codex 预设";
    ProxyAddress => "proxy", "代理地址";
    NoPreset => "none", "无";
    SettingsKeys => "R reload config  C C probe relay capabilities (takes seconds)", "R 重新加载配置  C C 探测中转能力（需数秒）";
    PressCAgain => "press C again to run the relay capability probe", "再按一次 C 以运行中转能力探测";
    Running => "running…", "运行中…";
    Verdicts => "relay capabilities", "中转能力";
    Reloaded => "config reloaded", "配置已重新加载";
    ReloadFailed => "reload failed", "重新加载失败";
    Enabled => "switched on", "已启用";
    Disabled => "switched off for 30 minutes", "已停用 30 分钟";
    BalancesRefreshed => "balances looked up", "余额已刷新";
    ActionFailed => "failed", "失败";
    FetchFailed => "cannot read the running helper", "无法读取运行中的 helper";
    HelpTitle => "Keys", "快捷键";
    HelpPages => "1-6 / Tab / Shift-Tab  switch page", "1-6 / Tab / Shift-Tab  切换页面";
    HelpQuit => "q / Ctrl-C  quit (the helper keeps running)", "q / Ctrl-C  退出（helper 继续运行）";
    HelpQuitServing => "q / Ctrl-C  quit and stop the helper (Codex is switched back)", "q / Ctrl-C  退出并停止 helper（Codex 配置会被切回）";
    HelpReload => "R  reload the config (not on Sessions: there R R resets)", "R  重新加载配置（会话页除外：那里 R R 是重置）";
    HelpMove => "Up/Down j/k PgUp/PgDn  move (Routing, Sessions, Requests)", "上/下 j/k PgUp/PgDn  移动（路由、会话、请求）";
    HelpSessions => "Sessions: v overrides only  e errors only", "会话页：v 仅有覆盖  e 仅错误";
    HelpSessionEffort => "  l/m/h/X effort low/medium/high/xhigh  x clear it", "  l/m/h/X 推理强度 低/中/高/超高  x 清除";
    HelpSessionPin => "  p pin (a picker)  P unpin  b profile (a picker)", "  p 固定（选择列表）  P 取消固定  b 配置（选择列表）";
    HelpRoutingPin => "  P P pin the selected provider in the config file (within 3 s)", "  P P 在配置文件中固定到所选供应商（3 秒内按两次）";
    HelpRequests => "Requests: f errors only", "请求页：f 仅错误";
    HelpPickers => "in a picker: Up/Down j/k choose  Enter apply  Esc cancel", "选择列表中：上/下 j/k 选择  Enter 应用  Esc 取消";
    HelpSessionReset => "  R R reset all of the session's overrides (within 3 s)", "  R R 重置该会话的全部覆盖（3 秒内按两次）";
    HelpLang => "L  English / 中文", "L  切换 English / 中文";
    HelpHelp => "?  this help (Esc closes)", "?  显示本帮助（Esc 关闭）";
    FooterKeys => "? help  q quit (the helper keeps running)  R reload  L language", "? 帮助  q 退出（helper 继续运行）  R 重载  L 语言";
    FooterKeysServing => "? help  q quit and stop the helper  R reload  L language", "? 帮助  q 退出并停止 helper  R 重载  L 语言";
    FooterKeysSessions => "? help  q quit (the helper keeps running)  R R reset session  L language", "? 帮助  q 退出（helper 继续运行）  R R 重置会话  L 语言";
    FooterKeysSessionsServing => "? help  q quit and stop the helper  R R reset session  L language", "? 帮助  q 退出并停止 helper  R R 重置会话  L 语言";
    LogFile => "log file", "日志文件";
    WebConsole => "web console", "网页控制台";
}

impl Msg {
    /// The text in `lang`.
    pub fn text(self, lang: Lang) -> &'static str {
        let (en, zh) = self.texts();
        match lang {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts that read the same in both languages (names and symbols).
    const SAME_IN_BOTH: &[Msg] = &[];

    #[test]
    fn every_message_has_an_english_and_a_distinct_chinese_text() {
        for &msg in Msg::ALL {
            let (en, zh) = msg.texts();
            assert!(!en.trim().is_empty(), "{msg:?} has no English text");
            assert!(!zh.trim().is_empty(), "{msg:?} has no Chinese text");
            if !SAME_IN_BOTH.contains(&msg) {
                assert_ne!(en, zh, "{msg:?} is not translated");
                assert!(
                    zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                    "{msg:?}'s Chinese text has no Chinese in it: {zh}"
                );
            }
        }
    }

    #[test]
    fn the_language_switch_goes_both_ways() {
        assert_eq!(Msg::PageUsage.text(Lang::En), "Usage");
        assert_eq!(Msg::PageUsage.text(Lang::Zh), "用量");
        assert_eq!(Lang::En.toggled().toggled(), Lang::En);
    }
}
