// Seed material for the tokenizer corpus (generate_corpus.mjs). Written for
// this project: plain sentences in many languages and scripts, code
// templates and word lists. The generator recombines them with a seeded PRNG.

export const ENGLISH_SENTENCES = [
  "The committee met on Tuesday to review the budget for the coming year.",
  "She opened the window, and the smell of rain filled the small kitchen.",
  "Most of the results were expected, but two of the measurements surprised everyone.",
  "He didn't know that the train had already left the station.",
  "They're planning a trip to the mountains in early September.",
  "I've read the report twice and I still can't find the missing figure.",
  "We'll need at least three volunteers to carry the boxes upstairs.",
  "You'd think that a city this old would have better maps of its own tunnels.",
  "The algorithm runs in linear time, which is why it scales to billions of records.",
  "It's not the heat that bothers me; it's the humidity.",
  "After the storm, the river rose by nearly two metres overnight.",
  "Our team shipped version 2.4.1 on March 3rd, 2024, after a long beta.",
  "\"Are you sure?\" she asked. \"Absolutely,\" he replied, without looking up.",
  "The museum (which opened in 1889) holds more than 40,000 objects.",
  "Please don't forget to sign the form before you leave.",
  "In the end, the simplest explanation turned out to be the right one.",
  "The quick brown fox jumps over the lazy dog.",
  "A journey of a thousand miles begins with a single step.",
  "Prices rose 3.5% in the last quarter, the fastest increase since 2008.",
  "The library's collection includes maps, letters and old newspapers.",
  "Children's books were moved to the second floor last spring.",
  "THE MEETING IS CANCELLED. PLEASE DON'T COME TO THE OFFICE TODAY.",
  "Why would anyone build a bridge there?",
  "Temperatures will range from -5°C at night to 12°C in the afternoon.",
  "Send your questions to the help desk, or call extension 4471.",
  "The patient's heart rate returned to normal within an hour.",
  "Mr. O'Brien and Dr. McAllister couldn't agree on the diagnosis.",
  "Every line of the poem ends with the same sound.",
  "The ship's captain ordered the crew to lower the sails.",
  "I'm not saying it's impossible — I'm saying it's unlikely.",
  "Rock'n'roll wasn't invented in a day, and neither was jazz.",
  "If you'd asked me yesterday, I'd have said no.",
  "The data were collected between 1998 and 2003 at 14 sites.",
  "Our neighbours' dog barks whenever the postman arrives.",
  "It was the best of times, it was the worst of times.",
  "The new policy takes effect on 1 January; until then, the old rules apply.",
  "Don't you think we ought to tell them?",
  "The orchestra tuned their instruments while the audience found their seats.",
  "You're welcome to join us for dinner on Friday.",
  "He'll be back before the end of the month, or so he says.",
];

export const WORDS = {
  noun: ["river", "garden", "engine", "teacher", "window", "market", "bridge", "signal", "letter", "forest", "planet",
    "server", "kernel", "village", "harbour", "question", "answer", "memory", "tower", "mirror", "winter", "island",
    "pattern", "number", "machine", "student", "doctor", "painter", "journey", "castle", "lantern", "blanket"],
  verb: ["builds", "carries", "watches", "finds", "writes", "repairs", "follows", "opens", "measures", "describes",
    "forgets", "remembers", "crosses", "paints", "answers", "counts", "moves", "holds", "breaks", "sings"],
  adj: ["quiet", "bright", "ancient", "narrow", "heavy", "curious", "gentle", "broken", "golden", "careful",
    "hidden", "silver", "empty", "crowded", "sudden", "frozen", "distant", "simple", "strange", "patient"],
  name: ["Alice", "Bob", "Carmen", "Dmitri", "Eleanor", "Farah", "Gustav", "Hiroshi", "Ingrid", "Jamal", "Kofi",
    "Lucía", "Mei", "Nikolai", "Olga", "Priya", "Quentin", "Rosa", "Sven", "Tamar", "Ulrich", "Valentina"],
  place: ["Lisbon", "Nairobi", "Osaka", "Reykjavík", "Montréal", "São Paulo", "Kraków", "Zürich", "Hà Nội",
    "Tbilisi", "Auckland", "Córdoba", "Marrakesh", "Vilnius", "Cusco", "Bergen"],
};

// A few sentences per language/script. Each entry: [tag, sentences].
export const LANGUAGES = [
  ["zh-Hans", ["今天天气很好，我们去公园散步吧。", "这本书讲述了一个小村庄在战争年代的故事。", "人工智能正在改变我们的工作和生活方式。",
    "请在明天下午三点之前提交你的报告。", "他每天早上六点起床，然后跑步半个小时。", "北京是中国的首都，也是一座历史悠久的城市。",
    "我们需要更多的数据来验证这个假设。", "学而时习之，不亦说乎？"]],
  ["zh-Hant", ["臺灣的夜市以小吃聞名，吸引了許多觀光客。", "這個問題比我們想像的還要複雜。", "圖書館星期一休館，其他日子開放到晚上九點。",
    "我們應該尊重每一個人的選擇。", "颱風過後，街道上到處都是斷裂的樹枝。"]],
  ["ja", ["今日はとても良い天気ですね。", "東京駅から新幹線に乗って京都へ行きました。", "この問題について、もう少し詳しく説明していただけますか。",
    "猫が窓のそばで気持ちよさそうに寝ている。", "私たちは来週の月曜日に会議を開く予定です。", "ラーメンとギョーザを注文しました。",
    "プログラミングを学ぶのは難しいけれど、とても楽しい。", "ｶﾀｶﾅの半角文字も時々使われます。"]],
  ["ko", ["오늘 날씨가 정말 좋네요.", "서울에서 부산까지 기차로 두 시간 반이 걸립니다.", "저는 매일 아침 커피를 마시면서 뉴스를 읽어요.",
    "이 문제를 해결하려면 더 많은 시간이 필요합니다.", "한국어는 세종대왕이 만든 한글로 씁니다.", "내일 회의는 오후 세 시에 시작합니다."]],
  ["ar", ["مرحبا بكم في موقعنا الإلكتروني.", "تقع مدينة القاهرة على ضفاف نهر النيل.", "أحب قراءة الكتب في المساء مع فنجان من القهوة.",
    "يجب علينا أن نحافظ على البيئة من أجل الأجيال القادمة.", "كان الطقس باردًا جدًا في الصباح.", "العِلْمُ نورٌ والجَهْلُ ظَلامٌ."]],
  ["he", ["שלום, מה שלומך היום?", "ירושלים היא עיר עתיקה עם היסטוריה ארוכה.", "אני לומד עברית כבר שלוש שנים.",
    "הספרייה פתוחה מיום ראשון עד יום חמישי.", "בְּרֵאשִׁית בָּרָא אֱלֹהִים אֵת הַשָּׁמַיִם וְאֵת הָאָרֶץ."]],
  ["hi", ["नमस्ते, आप कैसे हैं?", "भारत एक विशाल और विविधतापूर्ण देश है।", "मुझे हिंदी में किताबें पढ़ना बहुत पसंद है।",
    "कल सुबह हम दिल्ली के लिए रवाना होंगे।", "विज्ञान और प्रौद्योगिकी ने हमारे जीवन को बदल दिया है।", "गंगा नदी हिमालय से निकलती है।"]],
  ["th", ["สวัสดีครับ ยินดีที่ได้รู้จัก", "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย", "วันนี้อากาศร้อนมาก เราไปว่ายน้ำกันเถอะ",
    "ฉันชอบกินข้าวเหนียวมะม่วงที่สุด", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ"]],
  ["ru", ["Привет! Как у тебя дела?", "Москва — столица России и крупнейший город страны.", "Я читаю эту книгу уже третью неделю.",
    "Завтра обещают снег и сильный ветер.", "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Программист исправил ошибку за пять минут."]],
  ["uk", ["Добрий день! Як справи?", "Київ розташований на берегах Дніпра.", "Ґанок їхнього будинку пофарбований у жовтий колір.",
    "Ми їдемо до Львова наступного тижня."]],
  ["el", ["Καλημέρα! Τι κάνεις σήμερα;", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.", "Το φιλοσοφικό ερώτημα παραμένει αναπάντητο.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.", "ΑΥΡΙΟ ΘΑ ΒΡΕΞΕΙ ΣΤΗ ΘΕΣΣΑΛΟΝΙΚΗ."]],
  ["tr", ["Günaydın! Bugün nasılsınız?", "İstanbul, Avrupa ile Asya'yı birleştiren bir şehirdir.", "Çocuklar bahçede oyun oynuyorlar.",
    "Pijamalı hasta yağız şoföre çabucak güvendi.", "Türkiye'nin başkenti Ankara'dır."]],
  ["vi", ["Xin chào, bạn có khỏe không?", "Hà Nội là thủ đô của Việt Nam.", "Tôi thích ăn phở vào buổi sáng.",
    "Những con đường ở Sài Gòn luôn đông đúc xe máy.", "Tiếng Việt có sáu thanh điệu."]],
  ["de", ["Guten Morgen! Wie geht's dir?", "Die Straße führt über die Brücke zum Marktplatz.", "Übermorgen fahren wir nach München.",
    "Falsches Üben von Xylophonmusik quält jeden größeren Zwerg.", "Das Bundesverfassungsgericht hat heute entschieden."]],
  ["fr", ["Bonjour ! Comment ça va ?", "L'été dernier, nous sommes allés à la mer.", "Qu'est-ce que tu veux manger ce soir ?",
    "Les élèves étudient l'histoire de la Révolution française.", "Portez ce vieux whisky au juge blond qui fume."]],
  ["es", ["¡Hola! ¿Cómo estás?", "El niño comió una manzana en el jardín.", "Mañana iremos a la playa si no llueve.",
    "El veloz murciélago hindú comía feliz cardillo y kiwi.", "La cigüeña tocaba el saxofón detrás del palenque de paja."]],
  ["pl", ["Dzień dobry! Jak się masz?", "Zażółć gęślą jaźń.", "Warszawa leży nad Wisłą.", "Pchnąć w tę łódź jeża lub ośm skrzyń fig."]],
  ["fa", ["سلام، حال شما چطور است؟", "تهران پایتخت ایران است.", "من هر روز صبح چای می‌نوشم."]],
  ["bn", ["আমি বাংলায় গান গাই।", "ঢাকা বাংলাদেশের রাজধানী।", "আজ আকাশ খুব পরিষ্কার।"]],
  ["ta", ["வணக்கம், நீங்கள் எப்படி இருக்கிறீர்கள்?", "சென்னை தமிழ்நாட்டின் தலைநகரம்.", "யாதும் ஊரே யாவரும் கேளிர்."]],
  ["ka", ["გამარჯობა, როგორ ხარ?", "თბილისი საქართველოს დედაქალაქია."]],
  ["hy", ["Բարև, ինչպե՞ս ես:", "Երևանը Հայաստանի մայրաքաղաքն է:"]],
  ["am", ["ሰላም፣ እንዴት ነህ?", "አዲስ አበባ የኢትዮጵያ ዋና ከተማ ናት።"]],
  ["my", ["မင်္ဂလာပါ။", "ရန်ကုန်မြို့သည် မြန်မာနိုင်ငံ၏ အကြီးဆုံးမြို့ ဖြစ်သည်။"]],
  ["pt", ["Olá! Tudo bem com você?", "A ação começou às três horas da tarde.", "São Paulo é a maior cidade do Brasil."]],
  ["nl", ["Goedemorgen! Hoe gaat het?", "Het regent al de hele week in Amsterdam."]],
  ["cs", ["Příliš žluťoučký kůň úpěl ďábelské ódy.", "Praha je hlavní město České republiky."]],
  ["sw", ["Habari za asubuhi? Nzuri sana, asante.", "Nairobi ni mji mkuu wa Kenya."]],
];

export const EMOJI = [
  "😀", "😂", "🥲", "😍", "🤔", "🙃", "😴", "🤖", "👍", "👍🏽", "👋🏿", "🙏🏼", "💪🏻", "🎉", "🔥", "✨", "❤️", "💔", "⭐", "☕",
  "🍕", "🍣", "🌍", "🌈", "🚀", "✈️", "🏠", "📱", "💻", "⌨️", "🐍", "🦀", "🐧", "🦄", "🐈‍⬛", "🐻‍❄️",
  "👨‍👩‍👧‍👦", "👩‍❤️‍👨", "👩🏽‍💻", "🧑🏾‍🚀", "👨🏻‍🍳", "🏳️‍🌈", "🏴‍☠️", "🧑‍🤝‍🧑", "👁️‍🗨️", "❤️‍🔥",
  "🇺🇸", "🇯🇵", "🇩🇪", "🇧🇷", "🇮🇳", "🇿🇦", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "1️⃣", "#️⃣", "*️⃣", "©️", "®️", "™️", "↔️", "☺︎",
];

// Code templates: `$id` is replaced by a random identifier, `$n` by a number,
// `$s` by a short string, `$w` by an English word. `\t` stays a tab.
export const CODE_TEMPLATES = [
  ["cpp", `#include <vector>
#include <string>

namespace $id {

// Returns the sum of all elements; $w values are skipped.
int $id(const std::vector<int>& values) {
  int total = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < 0) continue;  // $w
    total += values[i] * $n;
  }
  return total;
}

}  // namespace $id
`],
  ["python", `import os
import sys
from typing import Optional


def $id(path: str, limit: int = $n) -> Optional[str]:
    """Read the first line of *path* ($w)."""
    if not os.path.exists(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            return line.rstrip("\\n")
    return None


if __name__ == "__main__":
    print($id(sys.argv[1]))
`],
  ["javascript", `const $id = async (url, options = {}) => {
  const response = await fetch(url, { ...options, headers: { "Content-Type": "application/json" } });
  if (!response.ok) {
    throw new Error(\`request failed: \${response.status} \${response.statusText}\`);
  }
  return response.json();
};

export default function $id(items) {
  return items.filter((x) => x.$id !== undefined).map((x, i) => ({ ...x, index: i + $n }));
}
`],
  ["rust", `use std::collections::HashMap;

/// Counts words in \`text\` ($w).
pub fn $id(text: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    #[test]
    fn it_works() {
        assert_eq!(super::$id("a b a").get("a"), Some(&$n));
    }
}
`],
  ["go", `package main

import (
\t"fmt"
\t"strings"
)

// $id joins the $w parts.
func $id(parts []string) string {
\tif len(parts) == 0 {
\t\treturn ""
\t}
\treturn strings.Join(parts, ", ")
}

func main() {
\tfmt.Println($id([]string{"$s", "$w"}), $n)
}
`],
  ["java", `public final class $id {
    private static final int LIMIT = $n;

    public static void main(String[] args) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < LIMIT; i++) {
            sb.append(i).append(';');
        }
        System.out.println(sb.toString()); // $w
    }
}
`],
  ["sql", `SELECT u.id, u.name, COUNT(o.id) AS orders
FROM users AS u
LEFT JOIN orders AS o ON o.user_id = u.id
WHERE u.created_at >= '2023-01-01' AND u.name LIKE '%$s%'
GROUP BY u.id, u.name
HAVING COUNT(o.id) > $n
ORDER BY orders DESC;
`],
  ["html", `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>$w &amp; $id</title>
  <style>body { margin: 0; font-family: sans-serif; }</style>
</head>
<body>
  <div class="$id" data-count="$n">
    <p>Hello, <b>$s</b>! &lt;not a tag&gt;</p>
  </div>
</body>
</html>
`],
  ["json", `{
  "name": "$id",
  "version": "1.$n.0",
  "private": true,
  "tags": ["$w", "$s", null, true, false],
  "nested": {"a": [1, 2, 3], "b": {"c": -0.5e-10}},
  "escaped": "line\\nbreak \\"quoted\\" \\u00e9"
}
`],
  ["yaml", `# $w configuration
server:
  host: 0.0.0.0
  port: $n
  tls:
    enabled: true
    cert: /etc/$id/cert.pem
workers:
  - name: $id
    replicas: 3
  - name: $s
    replicas: 1
`],
  ["shell", `#!/usr/bin/env bash
set -euo pipefail
for f in /var/log/$id/*.log; do
  if [[ -s "$f" ]]; then
    gzip -9 "$f" && echo "compressed $f" >&2
  fi
done
echo "done: $(date +%Y-%m-%dT%H:%M:%S) $n"
`],
  ["markdown", `# $w

Some **bold** text, some _italic_ text and \`inline code\`.

| column | value |
|--------|------:|
| $id    | $n    |
| $s     | 0.25  |

- [x] done
- [ ] todo: $w

> quoted line
`],
  ["diff", `diff --git a/src/$id.c b/src/$id.c
--- a/src/$id.c
+++ b/src/$id.c
@@ -10,7 +10,7 @@ int main(void)
-    int x = $n;
+    int x = $n + 1;
     return x;
 }
`],
  ["latex", `\\begin{equation}
  E = mc^2 \\quad \\text{and} \\quad \\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2}
\\end{equation}
% $w comment
\\section{$id}
`],
  ["c", `#include <stdio.h>

int main(int argc, char **argv) {
\tprintf("%s: %d\\n", argv[0], $n);
\treturn argc > 1 ? 0 : 1;
}
`],
];

export const SPECIAL_LIKE = [
  "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>", "<|constrain|>", "<|endoftext|>",
  "<|startoftext|>", "<|endofprompt|>", "<|reserved_200000|>", "<|reserved_200013|>", "<|im_start|>", "<|im_end|>",
  "<|", "|>", "<||>", "< |end| >", "<|END|>", "<|start", "start|>", "<<|start|>>", "<|start|><|start|>", "[PAD200019]",
  "<|reserved_201087|>", "<s>", "</s>", "[INST]", "<|channel|>final<|message|>",
];
