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
    RoutingKeys => "Up/Down select  e enable  x disable 30 min", "上/下 选择  e 启用  x 停用 30 分钟";
    SessionsEmpty => "sessions appear here once the running helper reports them", "运行中的 helper 报告会话后，会话会显示在这里";
    ColTime => "time", "时间";
    ColModel => "model", "模型";
    ColProvider => "provider/endpoint", "供应商/端点";
    ColStatus => "status", "状态码";
    ColTtfb => "TTFB", "首字节";
    NoRequests => "no requests yet", "暂无请求";
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
    HelpReload => "R  reload the config", "R  重新加载配置";
    HelpLang => "L  English / 中文", "L  切换 English / 中文";
    HelpHelp => "?  this help (Esc closes)", "?  显示本帮助（Esc 关闭）";
    FooterKeys => "? help  q quit (the helper keeps running)  R reload  L language", "? 帮助  q 退出（helper 继续运行）  R 重载  L 语言";
    FooterKeysServing => "? help  q quit and stop the helper  R reload  L language", "? 帮助  q 退出并停止 helper  R 重载  L 语言";
    LogFile => "log file", "日志文件";
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
