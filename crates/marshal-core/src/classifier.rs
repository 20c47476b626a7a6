//! The learned part of routing: a linear classifier that scores the four labels of
//! `docs/ROUTING-RUBRIC.md` (none, weak, base, strong) from hashed features of the prompt.
//!
//! Features are words, word pairs, character triples (typos, other languages, scripts without
//! spaces) and a few hand features: length, pasted code, stack traces, paths, question form, the
//! first words, the script, and which compiled-in keyword rules fire. Length itself is not a
//! feature: in a corpus hard problems come with long descriptions, but users ask them in one line. Each is hashed into one of
//! [`BUCKETS`] weights per label.
//!
//! The weights are trained offline by `scripts/train-router.sh` on `evals/` and compiled in
//! (`router-model.bin`): nothing is read or parsed at start-up. The label is the one with the
//! least expected cost ([`COST`]), so an uncertain choice between weak and strong lands on base.
//!
//! [`extract`] is the one feature extractor, shared by the hooks, `route --explain` and training.

use crate::agents::Tier;
use crate::builtin;
use crate::prompt_text::{split_code_fences, strip_quoted, truncate_at_char_boundary, Pattern, PromptText};

mod model {
    include!("router_model.rs");
}

/// Hashed feature space per label. 2^16 buckets held 1.5 points more on unseen authors than
/// 2^14 (collisions cost), and 2^17 little more than that (dev split, 2026-11-21).
pub const BUCKETS: usize = 1 << 16;

/// The rubric's labels, in the order of the model's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    None,
    Weak,
    Base,
    Strong,
}

impl From<Tier> for Label {
    fn from(tier: Tier) -> Label {
        match tier {
            Tier::Weak => Label::Weak,
            Tier::Base => Label::Base,
            Tier::Strong => Label::Strong,
        }
    }
}

pub const LABELS: [Label; 4] = [Label::None, Label::Weak, Label::Base, Label::Strong];

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::None => "none",
            Label::Weak => "weak",
            Label::Base => "base",
            Label::Strong => "strong",
        }
    }

    pub fn parse(text: &str) -> Option<Label> {
        LABELS.into_iter().find(|l| l.as_str() == text)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a wrong label costs, `COST[truth][chosen]`: a severe misroute (weak <-> strong, or
/// strong work for a non-request) costs twice an adjacent one (chosen on the dev split: at four,
/// strong work asked plainly went to base too often).
pub const COST: [[f32; 4]; 4] = [
    // chosen: none weak base strong
    [0.0, 1.0, 1.0, 2.0], // truth none
    [1.0, 0.0, 1.0, 2.0], // truth weak
    [1.0, 1.0, 0.0, 1.0], // truth base
    [2.0, 2.0, 1.0, 0.0], // truth strong
];

/// A severe misroute, as the issue defines it: weak and strong confused either way, or a prompt
/// that needed no agent sent to the strong tier. Fixed here, apart from [`COST`], so that tuning
/// the decision's prices never changes what is counted as severe.
pub fn is_severe(truth: Label, chosen: Label) -> bool {
    matches!(
        (truth, chosen),
        (Label::Weak, Label::Strong) | (Label::Strong, Label::Weak) | (Label::None, Label::Strong)
    )
}

/// Where extracted features go: hashed for scoring and training, named for `--explain`.
pub trait FeatureSink {
    /// One feature: a kind (`w` for a word, `b` for a pair...), its parts, and its value.
    fn feature(&mut self, kind: &str, parts: &[&str], value: f32);
}

/// How many patterns of each compiled-in rule occur in the prompt (the rules as compiled in,
/// whatever the user's configuration says: the model was trained on these).
pub fn builtin_hits(text: &PromptText) -> Vec<(&'static str, usize)> {
    builtin_hits_reusing(text, |_| None)
}

/// [`builtin_hits`], taking a rule's count from `known` when the caller has already matched it
/// as compiled in (routing has), and matching it here otherwise.
pub fn builtin_hits_reusing(
    text: &PromptText,
    known: impl Fn(&str) -> Option<usize>,
) -> Vec<(&'static str, usize)> {
    builtin::DEFAULT_RULES
        .iter()
        .map(|(id, _, _, patterns)| {
            let count = known(id)
                .unwrap_or_else(|| patterns.iter().filter(|p| text.matches(&Pattern::builtin(p))).count());
            (*id, count)
        })
        .filter(|(_, hits)| *hits > 0)
        .collect()
}

/// Prompts are scanned up to this many bytes; a pasted log past it adds nothing.
const SCAN_BYTES: usize = 16 * 1024;
/// Words past this many add no n-grams: the request is at the start.
const MAX_WORDS: usize = 400;
/// Character triples come from the first this many words.
const MAX_CHAR_WORDS: usize = 120;

/// Feeds every feature of `prompt` to `sink`. N-gram groups are scaled by 1/sqrt(their count),
/// so a long prompt does not outvote a short one by its length alone.
pub fn extract(prompt: &str, text: &PromptText, rule_hits: &[(&str, usize)], sink: &mut impl FeatureSink) {
    let scanned = truncate_at_char_boundary(prompt, SCAN_BYTES);
    let (prose, fenced_lines) = split_code_fences(scanned);
    let words = words_for_model(&strip_quoted(&prose));
    let words = &words[..words.len().min(MAX_WORDS)];

    sink.feature("bias", &[], 1.0);
    if let Some(first) = words.first() {
        sink.feature("first", &[first], 1.0);
        if let Some(second) = words.get(1) {
            sink.feature("first2", &[first, second], 1.0);
        }
    }
    if let Some(last) = words.last() {
        sink.feature("last", &[last], 1.0);
    }

    // Each distinct word and pair counts once: a list of 400 paths is one "<path>", not 400.
    let unigrams = distinct(words.iter().map(|w| [w.as_str()]));
    let unigram_scale = inverse_sqrt(unigrams.len());
    for (word, count) in &unigrams {
        sink.feature("w", word, unigram_scale * damped(*count));
    }
    let bigrams = distinct(words.windows(2).map(|p| [p[0].as_str(), p[1].as_str()]));
    let bigram_scale = inverse_sqrt(bigrams.len());
    for (pair, count) in &bigrams {
        sink.feature("b", pair, bigram_scale * damped(*count));
    }
    let char_words: Vec<&str> = unigrams.iter().map(|([w], _)| *w).take(MAX_CHAR_WORDS).collect();
    let triples: usize = char_words.iter().map(|w| w.chars().count()).sum();
    let triple_scale = inverse_sqrt(triples);
    let mut marked = String::new();
    for word in char_words {
        // Boundary marks make "fix" at a word's start differ from "-fix" inside one.
        marked.clear();
        marked.push('<');
        marked.push_str(word);
        marked.push('>');
        let starts: Vec<usize> = marked.char_indices().map(|(i, _)| i).chain([marked.len()]).collect();
        for window in starts.windows(4) {
            sink.feature("c", &[&marked[window[0]..window[3]]], triple_scale);
        }
    }

    hand_features(scanned, &prose, fenced_lines, sink);
    concept_features(words, sink);

    for (id, hits) in rule_hits.iter().filter(|(_, hits)| *hits > 0) {
        sink.feature("rule", &[id], 1.0);
        if *hits > 1 {
            sink.feature("rule2", &[id], 1.0);
        }
    }
    sink.feature("paths", &[count_band(text.paths)], 1.0);
}

/// The distinct items, in the order they first occur, with how often each occurs.
fn distinct<'a, const N: usize>(items: impl Iterator<Item = [&'a str; N]>) -> Vec<([&'a str; N], usize)> {
    let mut all: Vec<(usize, [&str; N], usize)> = items.enumerate().map(|(at, item)| (at, item, 1)).collect();
    all.sort_unstable_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    all.dedup_by(|later, first| {
        let same = later.1 == first.1;
        if same {
            first.2 += 1;
        }
        same
    });
    all.sort_unstable_by_key(|(at, _, _)| *at);
    all.into_iter().map(|(_, item, count)| (item, count)).collect()
}

/// A repeated word counts for more than once, but not in proportion: 1 + ln(count).
fn damped(count: usize) -> f32 {
    1.0 + (count.max(1) as f32).ln()
}

/// Word stems in several languages that name one idea, so what the classifier learns from the
/// many English prompts carries over to the few in other languages. A word counts when it starts
/// with a stem; scripts without spaces (Japanese, Chinese, Korean) count when they contain one.
const CONCEPTS: &[(&str, &[&str])] = &[
    (
        "architecture",
        &[
            "architect",
            "architekt",
            "arquitect",
            "arquitet",
            "архитект",
            "アーキテクチャ",
            "架构",
            "架構",
            "아키텍처",
            "आर्किटेक्चर",
            "معماري",
            "mimari",
            "arsitektur",
        ],
    ),
    (
        "design",
        &[
            "design",
            "diseñ",
            "entwerf",
            "entwurf",
            "concevoir",
            "conçoi",
            "progett",
            "projektuj",
            "zaprojekt",
            "спроектир",
            "проектир",
            "設計",
            "设计",
            "설계",
            "डिज़ाइन",
            "डिजाइन",
            "تصميم",
            "tasarla",
            "tasarım",
            "desain",
            "rancang",
        ],
    ),
    (
        "plan",
        &[
            "plan",
            "planen",
            "planific",
            "planej",
            "планир",
            "план",
            "計画",
            "计划",
            "계획",
            "roadmap",
            "rollout",
            "estrateg",
            "strateg",
            "стратег",
            "戦略",
            "策略",
            "전략",
            "योजना",
            "خطة",
            "rencana",
        ],
    ),
    (
        "migrate",
        &[
            "migrat",
            "migrac",
            "migraç",
            "migriert",
            "migrier",
            "миграц",
            "мигрир",
            "移行",
            "迁移",
            "移転",
            "마이그레이션",
            "이전",
            "माइग्रेट",
            "ترحيل",
            "migras",
        ],
    ),
    (
        "every",
        &[
            "all",
            "every",
            "todos",
            "todas",
            "alle",
            "tous",
            "toutes",
            "tutti",
            "wszystk",
            "все",
            "всех",
            "全",
            "所有",
            "모든",
            "सभी",
            "جميع",
            "tüm",
            "bütün",
            "semua",
        ],
    ),
    (
        "services",
        &[
            "service",
            "servic",
            "servizi",
            "dienst",
            "serwis",
            "сервис",
            "サービス",
            "服务",
            "服務",
            "서비스",
            "microservi",
        ],
    ),
    (
        "production",
        &[
            "prod",
            "produc",
            "produkc",
            "produkt",
            "продакшен",
            "прод",
            "本番",
            "生产",
            "生產",
            "프로덕션",
            "운영",
            "प्रोडक्शन",
            "üretim",
            "produksi",
        ],
    ),
    (
        "load",
        &[
            "load",
            "last",
            "carga",
            "charge",
            "carico",
            "obciąż",
            "нагруз",
            "負荷",
            "负载",
            "負載",
            "高并发",
            "부하",
            "traffic",
            "tráfico",
        ],
    ),
    (
        "sometimes",
        &[
            "sometimes",
            "occasional",
            "intermitt",
            "sporadi",
            "flaky",
            "randomly",
            "manchmal",
            "gelegentlich",
            "a veces",
            "veces",
            "vezes",
            "parfois",
            "talvolta",
            "czasem",
            "czasami",
            "иногда",
            "периодич",
            "時々",
            "まれに",
            "たまに",
            "偶尔",
            "有时",
            "가끔",
            "간헐",
            "कभी",
            "أحيانا",
            "bazen",
            "kadang",
        ],
    ),
    (
        "duplicate",
        &[
            "duplic",
            "double",
            "twice",
            "doppelt",
            "zweimal",
            "dwukrot",
            "podwój",
            "двойн",
            "дважды",
            "дубл",
            "二重",
            "重复",
            "重複",
            "两次",
            "중복",
        ],
    ),
    (
        "money",
        &[
            "payment",
            "billing",
            "invoice",
            "ledger",
            "refund",
            "money",
            "pago",
            "pagament",
            "paiement",
            "zahlung",
            "buchung",
            "rechnung",
            "płatn",
            "faktur",
            "factur",
            "платеж",
            "платёж",
            "счет",
            "счёт",
            "決済",
            "請求",
            "支付",
            "账单",
            "결제",
            "청구",
            "settlement",
            "charge",
            "भुगतान",
            "فاتورة",
            "ödeme",
            "pembayaran",
            "tagihan",
        ],
    ),
    (
        "memory",
        &[
            "memory",
            "leak",
            "heap",
            "oom",
            "speicher",
            "memoria",
            "mémoire",
            "pamię",
            "памят",
            "утечк",
            "wyciek",
            "fuga",
            "fuite",
            "メモリ",
            "リーク",
            "内存",
            "泄漏",
            "메모리",
            "누수",
            "मेमोरी",
            "ذاكرة",
            "bellek",
            "memori",
        ],
    ),
    (
        "concurrency",
        &[
            "race",
            "deadlock",
            "concurren",
            "nebenläuf",
            "concorr",
            "współbież",
            "конкурент",
            "гонк",
            "взаимоблок",
            "競合",
            "デッドロック",
            "竞态",
            "并发",
            "死锁",
            "경쟁",
            "교착",
        ],
    ),
    (
        "security",
        &[
            "secur",
            "sicher",
            "segur",
            "sécur",
            "sicurezz",
            "bezpiecz",
            "безопас",
            "vulnerab",
            "schwachstell",
            "уязвим",
            "threat",
            "セキュリティ",
            "脆弱",
            "安全",
            "漏洞",
            "보안",
            "취약",
            "सुरक्षा",
            "أمان",
            "güvenlik",
            "keamanan",
        ],
    ),
    (
        "rename",
        &[
            "renam",
            "umbenenn",
            "renombr",
            "renome",
            "renomm",
            "rinomin",
            "hernoem",
            "переимен",
            "リネーム",
            "名前を変更",
            "重命名",
        ],
    ),
    (
        "typo",
        &[
            "typo",
            "tippfehler",
            "errata",
            "erratas",
            "faute",
            "refuso",
            "literówk",
            "опечат",
            "タイポ",
            "誤字",
            "拼写",
            "错别字",
            "오타",
        ],
    ),
    ("version", &["version", "versión", "versão", "wersj", "верси", "バージョン", "版本", "버전", "bump"]),
    (
        "where",
        &[
            "where",
            "wo",
            "dónde",
            "donde",
            "onde",
            "où",
            "dove",
            "gdzie",
            "где",
            "どこ",
            "哪里",
            "哪儿",
            "어디",
            "कहाँ",
            "कहां",
            "أين",
            "nerede",
            "dimana",
            "kahan",
        ],
    ),
    (
        "how",
        &[
            "how",
            "wie",
            "cómo",
            "como",
            "comment",
            "come",
            "jak",
            "как",
            "どうやって",
            "どう",
            "怎么",
            "如何",
            "어떻게",
            "कैसे",
            "كيف",
            "nasıl",
            "bagaimana",
            "gimana",
            "kaise",
        ],
    ),
    (
        "why",
        &[
            "why",
            "warum",
            "wieso",
            "porque",
            "pourquoi",
            "perché",
            "dlaczego",
            "почему",
            "なぜ",
            "為什麼",
            "为什么",
            "왜",
            "क्यों",
            "لماذا",
            "neden",
            "kenapa",
            "mengapa",
            "kyun",
            "kyon",
        ],
    ),
    (
        "test",
        &[
            "test",
            "prueba",
            "teste",
            "тест",
            "テスト",
            "测试",
            "測試",
            "테스트",
            "परीक्षण",
            "टेस्ट",
            "اختبار",
            "pengujian",
        ],
    ),
    (
        "add",
        &[
            "add",
            "hinzufüg",
            "ergänz",
            "añad",
            "agreg",
            "adicion",
            "ajout",
            "aggiung",
            "dodaj",
            "добав",
            "追加",
            "添加",
            "增加",
            "추가",
            "जोड़",
            "जोड",
            "أضف",
            "إضافة",
            "ekle",
            "tambah",
        ],
    ),
    (
        "implement",
        &[
            "implement",
            "impleme",
            "umsetz",
            "реализ",
            "実装",
            "实现",
            "實現",
            "구현",
            "लागू",
            "تنفيذ",
            "uygula",
        ],
    ),
    (
        "error",
        &[
            "error",
            "fehler",
            "erro",
            "erreur",
            "errore",
            "błąd",
            "ошибк",
            "exception",
            "エラー",
            "例外",
            "错误",
            "錯誤",
            "报错",
            "오류",
            "에러",
            "bug",
            "баг",
            "バグ",
            "버그",
            "त्रुटि",
            "एरर",
            "خطأ",
            "kesalahan",
            "eror",
        ],
    ),
    (
        "explain",
        &[
            "explain",
            "erklär",
            "explic",
            "expliq",
            "spieg",
            "wyjaśn",
            "объясн",
            "説明",
            "解释",
            "解釋",
            "설명",
            "समझा",
            "اشرح",
            "açıkla",
            "jelaskan",
        ],
    ),
    (
        "sport",
        &[
            "football",
            "soccer",
            "fußball",
            "fútbol",
            "futebol",
            "calcio",
            "piłk",
            "футбол",
            "サッカー",
            "足球",
            "축구",
            "won",
            "gewonnen",
            "ganó",
            "ganhou",
            "gagné",
            "vinto",
            "wygrał",
            "выиграл",
            "優勝",
            "冠军",
            "우승",
            "worldcup",
            "mundial",
            "weltmeister",
            "क्रिकेट",
            "cricket",
            "futbol",
            "sepak",
        ],
    ),
    (
        "food",
        &[
            "recipe",
            "rezept",
            "receta",
            "receita",
            "recette",
            "ricett",
            "przepis",
            "рецепт",
            "レシピ",
            "食谱",
            "菜谱",
            "레시피",
            "cook",
            "kochen",
            "cocin",
            "cozinh",
            "cuisin",
            "ofen",
            "horno",
            "forno",
            "four",
            "духовк",
            "オーブン",
            "烤箱",
            "오븐",
            "carbonara",
            "pizza",
            "pasta",
            "रेसिपी",
            "وصفة",
            "resep",
        ],
    ),
    (
        "travel",
        &[
            "travel",
            "vacation",
            "holiday",
            "urlaub",
            "reise",
            "vacacion",
            "viaje",
            "férias",
            "viagem",
            "vacances",
            "voyage",
            "vacanz",
            "viaggio",
            "wakacj",
            "podróż",
            "отпуск",
            "путешеств",
            "旅行",
            "여행",
            "यात्रा",
            "سفر",
            "seyahat",
            "tatil",
            "liburan",
            "perjalanan",
        ],
    ),
    (
        "thanks",
        &[
            "thank",
            "thx",
            "danke",
            "gracias",
            "obrigad",
            "merci",
            "grazie",
            "dziękuj",
            "dzięki",
            "спасибо",
            "ありがとう",
            "谢谢",
            "謝謝",
            "감사",
            "고마워",
            "धन्यवाद",
            "शुक्रिया",
            "شكرا",
            "teşekkür",
            "makasih",
        ],
    ),
    (
        "mystery",
        &[
            "unexplain",
            "mysteri",
            "suddenly",
            "heisenbug",
            "spike",
            "unreproduc",
            "irreproduc",
            "weird",
            "plötzlich",
            "unerklär",
            "seltsam",
            "repente",
            "extrañ",
            "soudain",
            "étrange",
            "estranh",
            "improvvis",
            "strano",
            "nagle",
            "dziwn",
            "внезапно",
            "непонятн",
            "странн",
            "突然",
            "原因不明",
            "原因が分から",
            "找不到原因",
            "莫名",
            "갑자기",
            "원인을",
        ],
    ),
    (
        "regulated",
        &[
            "sox",
            "hipaa",
            "pci",
            "gdpr",
            "dsgvo",
            "rgpd",
            "complian",
            "audit",
            "regulat",
            "revenue",
            "accrual",
            "financ",
            "medical",
            "patient",
            "paciente",
            "pacjent",
            "cumplimiento",
            "conformit",
            "аудит",
            "медицин",
            "監査",
            "医療",
            "患者",
            "审计",
            "医疗",
        ],
    ),
    (
        "decision",
        &[
            "rewrite",
            "tradeoff",
            "tradeoff",
            "decide",
            "decision",
            "riscriv",
            "reescri",
            "umschreib",
            "réécri",
            "переписа",
            "書き直",
            "重写",
            "决定",
            "決め",
        ],
    ),
    (
        "greeting",
        &[
            "hello",
            "hallo",
            "hola",
            "olá",
            "bonjour",
            "salut",
            "ciao",
            "cześć",
            "привет",
            "こんにちは",
            "おはよう",
            "你好",
            "안녕",
            "नमस्ते",
            "مرحبا",
            "merhaba",
            "selam",
            "halo",
        ],
    ),
];

/// Every concept a word of the prompt names, once each.
fn concept_features(words: &[String], sink: &mut impl FeatureSink) {
    let mut found = [false; CONCEPTS.len()];
    for (at, word) in words.iter().enumerate() {
        // "hello world" is the first program anyone writes, not a greeting.
        if word == "hello" && words.get(at + 1).is_some_and(|next| next == "world") {
            continue;
        }
        if word.chars().any(is_spaceless_script) {
            for (index, (_, stems)) in CONCEPTS.iter().enumerate() {
                found[index] |= stems.iter().any(|stem| word.contains(stem));
            }
            continue;
        }
        let Some(&first) = word.as_bytes().first() else { continue };
        let (from, to) = (STEM_INDEX.starts[first as usize], STEM_INDEX.starts[first as usize + 1]);
        for &(concept, stem) in &STEM_INDEX.stems[from as usize..to as usize] {
            if word.starts_with(stem) {
                found[concept as usize] = true;
            }
        }
    }
    for ((concept, _), _) in CONCEPTS.iter().zip(found).filter(|(_, f)| *f) {
        sink.feature("concept", &[concept], 1.0);
    }
}

const STEM_COUNT: usize = {
    let mut count = 0;
    let mut concept = 0;
    while concept < CONCEPTS.len() {
        count += CONCEPTS[concept].1.len();
        concept += 1;
    }
    count
};

/// The concepts' stems grouped by their first byte, built at compile time: a word is compared
/// only with the stems that start as it does (a few of 550).
struct StemIndex {
    /// `(concept, stem)`, in first-byte order.
    stems: [(u8, &'static str); STEM_COUNT],
    /// Where the stems of each first byte begin in `stems`; byte `b`'s end at `starts[b + 1]`.
    starts: [u16; 257],
}

const STEM_INDEX: StemIndex = {
    assert!(CONCEPTS.len() <= u8::MAX as usize && STEM_COUNT <= u16::MAX as usize);
    let mut starts = [0u16; 257];
    let mut concept = 0;
    while concept < CONCEPTS.len() {
        let mut stem = 0;
        while stem < CONCEPTS[concept].1.len() {
            starts[CONCEPTS[concept].1[stem].as_bytes()[0] as usize + 1] += 1;
            stem += 1;
        }
        concept += 1;
    }
    let mut byte = 1;
    while byte < 257 {
        starts[byte] += starts[byte - 1];
        byte += 1;
    }
    let mut next = starts;
    let mut stems: [(u8, &'static str); STEM_COUNT] = [(0, ""); STEM_COUNT];
    let mut concept = 0;
    while concept < CONCEPTS.len() {
        let mut stem = 0;
        while stem < CONCEPTS[concept].1.len() {
            let text = CONCEPTS[concept].1[stem];
            let slot = &mut next[text.as_bytes()[0] as usize];
            stems[*slot as usize] = (concept as u8, text);
            *slot += 1;
            stem += 1;
        }
        concept += 1;
    }
    StemIndex { stems, starts }
};

/// A letter, a digit, or a mark that belongs inside a word: Devanagari's virama and nukta, or
/// Arabic vowel signs, are not alphanumeric, and splitting on them broke words in two.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(c as u32,
            0x0300..=0x036f // combining accents (decomposed Latin)
            | 0x0483..=0x0489 // Cyrillic
            | 0x0591..=0x05c7 // Hebrew points
            | 0x0610..=0x061a | 0x064b..=0x065f | 0x0670 // Arabic
            | 0x0900..=0x0963 | 0x0966..=0x0dff // Indic scripts (the dandas are punctuation)
        )
}

/// Japanese, Chinese and Korean: words run together, so a stem is looked for inside a run.
fn is_spaceless_script(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x9fff | 0xac00..=0xd7af)
}

fn hand_features(scanned: &str, prose: &str, fenced_lines: usize, sink: &mut impl FeatureSink) {
    sink.feature("fenced", &[count_band(fenced_lines)], 1.0);
    let trace_lines = scanned.lines().filter(|l| looks_like_trace_line(l)).count();
    sink.feature("trace", &[count_band(trace_lines)], 1.0);
    let trimmed = prose.trim_end();
    if trimmed.ends_with('?') {
        sink.feature("ends", &["?"], 1.0);
    }
    let questions = prose.matches('?').count();
    if questions > 1 {
        sink.feature("questions", &["many"], 1.0);
    }
    if prose.contains("```") || scanned.contains("    ") {
        sink.feature("indented", &[], 1.0);
    }
    for script in scripts_of(prose) {
        sink.feature("script", &[script], 1.0);
    }
}

/// Lowercase words (any script) with paths, numbers and long hex ids folded into placeholders.
fn words_for_model(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for token in text.split_whitespace() {
        let bare = token.trim_matches(|c: char| !is_word_char(c) && c != '/' && c != '.');
        if bare.contains('/') && bare.chars().any(char::is_alphanumeric) && !bare.contains("://") {
            words.push(String::from("<path>"));
            continue;
        }
        if let Some((stem, ext)) = bare.rsplit_once('.') {
            if !stem.is_empty()
                && (1..=5).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphabetic())
            {
                words.push(String::from("<file>"));
                words.push(format!(".{}", ext.to_ascii_lowercase()));
                continue;
            }
        }
        for part in token.split(|c: char| !is_word_char(c)).filter(|p| !p.is_empty()) {
            if part.chars().all(|c| c.is_ascii_digit()) {
                words.push(String::from("<num>"));
            } else {
                words.push(part.to_lowercase());
            }
        }
    }
    words
}

fn looks_like_trace_line(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("at ")
        || line.starts_with("File \"")
        || line.starts_with("Traceback")
        || line.contains("Error:")
        || line.contains("Exception")
        || line.contains("panicked at")
        || line.starts_with("error[")
        || line.starts_with("E   ")
        || line.contains("FAILED")
        || line.contains("Caused by")
}

/// The writing systems present, by their letters.
fn scripts_of(text: &str) -> Vec<&'static str> {
    let mut found = [false; 6];
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        let index = match c as u32 {
            0..=0x7f => 0,
            0x80..=0x24f => 1,
            0x400..=0x4ff => 2,
            0x900..=0x97f => 3,
            _ if is_spaceless_script(c) => 4,
            _ => 5,
        };
        found[index] = true;
    }
    const NAMES: [&str; 6] = ["latin", "latin-accented", "cyrillic", "devanagari", "cjk", "other"];
    NAMES.iter().zip(found).filter(|(_, f)| *f).map(|(n, _)| *n).collect()
}

fn count_band(count: usize) -> &'static str {
    match count {
        0 => "0",
        1 => "1",
        2..=3 => "2-3",
        4..=10 => "4-10",
        11..=50 => "11-50",
        _ => "50+",
    }
}

fn inverse_sqrt(count: usize) -> f32 {
    if count == 0 {
        0.0
    } else {
        1.0 / (count as f32).sqrt()
    }
}

/// FNV-1a over the kind and parts, with separators: stable across platforms and releases.
pub fn feature_hash(kind: &str, parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(kind.as_bytes());
    for part in parts {
        eat(&[0x1f]);
        eat(part.as_bytes());
    }
    hash
}

/// The bucket a feature lands in and the sign it is counted with (signed hashing halves the
/// bias that collisions add).
pub fn bucket_and_sign(kind: &str, parts: &[&str]) -> (usize, f32) {
    let hash = feature_hash(kind, parts);
    let bucket = (hash % BUCKETS as u64) as usize;
    let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
    (bucket, sign)
}

/// A sparse feature vector: `(bucket, signed value)`, summed per bucket.
#[derive(Debug, Default, Clone)]
pub struct Hashed(pub Vec<(u32, f32)>);

impl FeatureSink for Hashed {
    fn feature(&mut self, kind: &str, parts: &[&str], value: f32) {
        let (bucket, sign) = bucket_and_sign(kind, parts);
        self.0.push((bucket as u32, sign * value));
    }
}

impl Hashed {
    pub fn of(prompt: &str, text: &PromptText, rule_hits: &[(&str, usize)]) -> Hashed {
        let mut hashed = Hashed(Vec::with_capacity(256));
        extract(prompt, text, rule_hits, &mut hashed);
        hashed
    }
}

/// The model's verdict on one prompt.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub label: Label,
    /// Probability of each label, in [`LABELS`] order (in JSON, an object keyed by label).
    #[serde(serialize_with = "probabilities_by_label")]
    pub probabilities: [f32; 4],
}

fn probabilities_by_label<S: serde::Serializer>(p: &[f32; 4], serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(LABELS.len()))?;
    for label in LABELS {
        map.serialize_entry(label.as_str(), &p[label.index()])?;
    }
    map.end()
}

impl Verdict {
    /// The probability of the chosen label: the confidence `eval`'s reliability table checks.
    pub fn confidence(&self) -> f32 {
        self.probabilities[self.label.index()]
    }

    /// [`Verdict::confidence`] to the hundredth, as a recommendation states it.
    pub fn stated_confidence(&self) -> f64 {
        (f64::from(self.confidence()) * 100.0).round() / 100.0
    }

    /// The most probable label, which the least-cost choice may pass over.
    pub fn likeliest(&self) -> Label {
        LABELS
            .into_iter()
            .max_by(|a, b| self.probabilities[a.index()].total_cmp(&self.probabilities[b.index()]))
            .unwrap_or(self.label)
    }
}

/// Classifies `prompt` with the compiled-in model; `rule_hits` as [`builtin_hits`] gives them.
pub fn classify(prompt: &str, text: &PromptText, rule_hits: &[(&str, usize)]) -> Verdict {
    verdict_of(&Hashed::of(prompt, text, rule_hits), &model::WEIGHTS, model::SCALE, &model::BIAS)
}

/// [`classify`] for a prompt on its own, off the hot path: `eval`, and `route` when the
/// classifier's answer was none (routing then keeps no verdict to show).
pub fn classify_prompt(prompt: &str) -> Verdict {
    let text = PromptText::new(prompt);
    classify(prompt, &text, &builtin_hits(&text))
}

/// The label of least expected cost, from weights stored as `BUCKETS x 4` `i8` scaled by
/// `scale`.
pub fn verdict_of(features: &Hashed, weights: &[u8], scale: f32, bias: &[f32; 4]) -> Verdict {
    let mut scores = *bias;
    for (bucket, value) in &features.0 {
        let row = *bucket as usize * 4;
        for (label, score) in scores.iter_mut().enumerate() {
            *score += weight_at(weights, row + label) * scale * value;
        }
    }
    let probabilities = softmax(scores);
    let label = least_cost(&probabilities);
    Verdict { label, probabilities }
}

fn weight_at(weights: &[u8], index: usize) -> f32 {
    weights.get(index).map_or(0.0, |byte| f32::from(*byte as i8))
}

pub fn softmax(scores: [f32; 4]) -> [f32; 4] {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp = scores.map(|s| (s - max).exp());
    let sum: f32 = exp.iter().sum();
    exp.map(|e| e / sum)
}

/// The label whose expected cost under `probabilities` is least.
pub fn least_cost(probabilities: &[f32; 4]) -> Label {
    let expected =
        |chosen: usize| -> f32 { (0..4).map(|truth| probabilities[truth] * COST[truth][chosen]).sum() };
    let mut best = 0;
    for chosen in 1..4 {
        if expected(chosen) < expected(best) {
            best = chosen;
        }
    }
    LABELS[best]
}

/// One feature's pull towards the chosen label, for `route --explain`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Pull {
    /// The feature's id as the model knows it (`w:config`, `paths:0`).
    pub feature: String,
    /// The same in words, for people (`word "config"`, `no file paths`).
    pub means: String,
    /// Its score for the chosen label minus its mean score over the others.
    pub weight: f32,
}

/// The features that pulled hardest towards and away from `label`, strongest first.
pub fn strongest_pulls(prompt: &str, label: Label, count: usize) -> Vec<Pull> {
    struct Named(Vec<(String, String, usize, f32)>);
    impl FeatureSink for Named {
        fn feature(&mut self, kind: &str, parts: &[&str], value: f32) {
            let (bucket, sign) = bucket_and_sign(kind, parts);
            let name =
                if parts.is_empty() { kind.to_string() } else { format!("{kind}:{}", parts.join(" ")) };
            let means = feature_in_words(kind, parts).unwrap_or_else(|| name.clone());
            self.0.push((name, means, bucket, sign * value));
        }
    }
    let mut named = Named(Vec::new());
    let text = PromptText::new(prompt);
    extract(prompt, &text, &builtin_hits(&text), &mut named);
    let chosen = label.index();
    let mut pulls: Vec<Pull> = named
        .0
        .into_iter()
        .map(|(feature, means, bucket, value)| {
            let score = |l: usize| weight_at(&model::WEIGHTS, bucket * 4 + l) * model::SCALE * value;
            let others = (0..4).filter(|l| *l != chosen).map(score).sum::<f32>() / 3.0;
            Pull { feature, means, weight: score(chosen) - others }
        })
        .filter(|p| p.weight.abs() > 0.01)
        .collect();
    pulls.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
    pulls.dedup_by(|a, b| a.feature == b.feature);
    pulls.truncate(count);
    pulls
}

/// A feature as a person would say it; absent things count too (a prompt with no code block
/// says something), so they are named as absences.
fn feature_in_words(kind: &str, parts: &[&str]) -> Option<String> {
    let joined = parts.join(" ");
    let counted = |one: &str, many: &str| match joined.as_str() {
        "0" => format!("no {many}"),
        "1" => format!("one {one}"),
        band => format!("{band} {many}"),
    };
    let words = match kind {
        "bias" => "the model's prior (every prompt has it)".to_string(),
        "first" | "first2" => format!("starts with \"{joined}\""),
        "last" => format!("ends with \"{joined}\""),
        "w" => match joined.as_str() {
            "<path>" => "a path".to_string(),
            "<file>" => "a file name".to_string(),
            "<num>" => "a number".to_string(),
            word => format!("word \"{word}\""),
        },
        "b" => format!("words \"{joined}\""),
        "c" => {
            let (starts, rest) = joined.strip_prefix('<').map_or((false, joined.as_str()), |r| (true, r));
            let (ends, core) = rest.strip_suffix('>').map_or((false, rest), |r| (true, r));
            match (starts, ends) {
                (true, true) => format!("the word \"{core}\""),
                (true, false) => format!("a word starting \"{core}\""),
                (false, true) => format!("a word ending \"{core}\""),
                (false, false) => format!("letters \"{core}\" inside a word"),
            }
        }
        "fenced" => counted("line of fenced code", "lines of fenced code"),
        "trace" => counted("stack-trace line", "stack-trace lines"),
        "paths" => counted("file path", "file paths"),
        "ends" => "ends with a question mark".to_string(),
        "questions" => "more than one question".to_string(),
        "indented" => "indented or fenced code".to_string(),
        "script" => format!("{joined} script"),
        "concept" => format!("the idea \"{joined}\" (in any language)"),
        "rule" => format!("rule {joined} matched"),
        "rule2" => format!("rule {joined} matched more than once"),
        _ => return None,
    };
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_feature_has_words_for_explain() {
        struct Kinds(Vec<(String, Vec<String>)>);
        impl FeatureSink for Kinds {
            fn feature(&mut self, kind: &str, parts: &[&str], _value: f32) {
                self.0.push((kind.to_string(), parts.iter().map(|p| p.to_string()).collect()));
            }
        }
        let prompt = "can you fix src/a.rs? it panics at 3 places, is it a race?\n```\nlet x = 1;\n```\n\
                      thread 'main' panicked at src/main.rs:10:5\n    at foo (bar.js:1:2)\n日本語も";
        let mut kinds = Kinds(Vec::new());
        for prompt in [prompt, "why does the build fail twice?"] {
            let text = PromptText::new(prompt);
            extract(prompt, &text, &builtin_hits(&text), &mut kinds);
        }
        let seen: std::collections::BTreeSet<&str> = kinds.0.iter().map(|(k, _)| k.as_str()).collect();
        let kinds_known = [
            "bias",
            "first",
            "first2",
            "last",
            "w",
            "b",
            "c",
            "fenced",
            "trace",
            "paths",
            "ends",
            "questions",
            "indented",
            "script",
            "concept",
            "rule",
        ];
        for kind in kinds_known {
            assert!(seen.contains(kind), "{kind} not extracted from the sample: {seen:?}");
        }
        for (kind, parts) in &kinds.0 {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            assert!(feature_in_words(kind, &parts).is_some(), "no words for {kind}:{parts:?}");
        }
        assert_eq!(feature_in_words("paths", &["0"]).as_deref(), Some("no file paths"));
        assert_eq!(feature_in_words("c", &["<fi"]).as_deref(), Some("a word starting \"fi\""));
    }

    fn names(prompt: &str) -> Vec<String> {
        struct Names(Vec<String>);
        impl FeatureSink for Names {
            fn feature(&mut self, kind: &str, parts: &[&str], _value: f32) {
                self.0.push(format!("{kind}:{}", parts.join(" ")));
            }
        }
        let mut n = Names(Vec::new());
        let text = PromptText::new(prompt);
        extract(prompt, &text, &builtin_hits(&text), &mut n);
        n.0
    }

    #[test]
    fn hindi_words_stay_whole_and_hello_world_is_no_greeting() {
        // The virama (्) and nukta (़) are marks, not letters: a word must not break at them.
        let hindi = names("पेमेंट सिस्टम की आर्किटेक्चर डिज़ाइन करो");
        for expected in
            ["w:आर्किटेक्चर", "w:डिज़ाइन", "concept:architecture", "concept:design", "script:devanagari"]
        {
            assert!(hindi.contains(&expected.to_string()), "{expected} missing from {hindi:?}");
        }
        assert!(!names("write a hello world service in go").contains(&"concept:greeting".to_string()));
        assert!(names("hello, can you help").contains(&"concept:greeting".to_string()));
    }

    #[test]
    fn features_name_words_pairs_and_hand_signals() {
        let features = names("Fix the typo in src/app.py\n```\nTraceback (most recent call last):\n```");
        for expected in [
            "w:fix",
            "b:fix the",
            "first:fix",
            "w:<path>",
            "c:<fi",
            "fenced:1",
            "trace:1",
            "rule:builtin.chore",
        ] {
            assert!(features.contains(&expected.to_string()), "{expected} missing from {features:?}");
        }
        // Quoted text is data, not the request.
        assert!(!names("fix the typo in the word 'architecture'").contains(&"w:architecture".to_string()));
    }

    #[test]
    fn other_scripts_give_character_features() {
        let features = names("このテストを直して");
        assert!(features.contains(&"script:cjk".to_string()));
        assert!(features.iter().any(|f| f.starts_with("c:")));
    }

    #[test]
    fn least_cost_prefers_base_between_weak_and_strong() {
        assert_eq!(least_cost(&[0.0, 0.45, 0.1, 0.45]), Label::Base);
        assert_eq!(least_cost(&[0.0, 0.9, 0.05, 0.05]), Label::Weak);
        assert_eq!(least_cost(&[0.7, 0.1, 0.1, 0.1]), Label::None);
    }

    #[test]
    fn severe_misroutes_are_weak_strong_both_ways_and_strong_for_a_non_request() {
        let severe: Vec<(Label, Label)> = LABELS
            .iter()
            .flat_map(|t| LABELS.iter().map(move |c| (*t, *c)))
            .filter(|(t, c)| is_severe(*t, *c))
            .collect();
        assert_eq!(
            severe,
            [(Label::None, Label::Strong), (Label::Weak, Label::Strong), (Label::Strong, Label::Weak)]
        );
    }

    #[test]
    fn the_hash_is_stable() {
        // Changing it silently invalidates the compiled-in model. The value is FNV-1a 64 of
        // b"w\x1ffix", computed apart from this code.
        assert_eq!(feature_hash("w", &["fix"]), 0x5125_29e6_aca7_2fa6);
    }

    #[test]
    fn every_stem_names_its_concept_through_the_compiled_index() {
        let mut dead = Vec::new();
        for (concept, stems) in CONCEPTS {
            for stem in *stems {
                for word in [stem.to_string(), format!("{stem}ing")] {
                    if !names(&format!("please {word} now")).contains(&format!("concept:{concept}")) {
                        dead.push(word);
                    }
                }
            }
        }
        assert!(dead.is_empty(), "stems no prompt word can match: {dead:?}");
        assert_eq!(STEM_INDEX.starts[256] as usize, STEM_COUNT);
    }

    #[test]
    fn huge_prompts_are_cut_not_slow() {
        let huge = "refactor the parser ".repeat(100_000);
        let mut hashed = Hashed::default();
        let text = PromptText::new(&huge);
        extract(&huge, &text, &builtin_hits(&text), &mut hashed);
        assert!(hashed.0.len() < 3_000, "{} features", hashed.0.len());
    }
}
