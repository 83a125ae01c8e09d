// A small text that synthetic tokenizers learn their merges from: plain English stories and prose
// with digits, punctuation, code-like text and a few other scripts, so merges and byte fallback
// both get exercised. Written for tapir.
export const CORPUS = `Once upon a time there was a small tapir who lived near a river. Every morning the tapir walked
to the water, looked at the fish, and said hello to the birds. One day a little girl named Mia came
to the river with her brother Tom. They had a red ball and a blue kite. "Can we play together?" asked
Mia. The tapir did not know how to play, but it wanted to try. Tom threw the ball, and the tapir ran
after it. The ball rolled into the river! The tapir jumped in, swam to the ball and brought it back.
Mia laughed and clapped her hands. "You are the best friend we ever had," she said.
After that day, the three friends played by the river every afternoon. They flew the kite when the
wind was strong, and they sat under the big tree when the sun was hot. When it rained, they watched
the drops fall on the leaves and counted them: one, two, three, four, five, six, seven, eight, nine,
ten. Sometimes they counted to 100 or even 1000, and once Tom said he could count to 123456789.
The model reads a sentence, turns each word into numbers, and predicts what comes next. Why did it
say that? To answer, we look inside: which heads attended to which tokens, which layer wrote the
answer into the residual stream, and what happens when we patch one activation from another run.
A bank's model refused a loan, and the client asked why. An explanation must be faithful: when we
remove the words it blames, the decision should change more than when we remove random words.
Numbers like 3.14159, 2.71828, 42, 2026 and 1e-5 appear in papers; so do symbols like +, -, *, /, =,
<, >, (, ), [, ], {, }, and code such as: for (let i = 0; i < n; i++) { sum += x[i] * w[i]; }
def forward(self, x): return self.norm(x + self.attention(x)) if x is not None else None
Other scripts appear too: café, naïve, Straße, señor, Ελληνικά, русский язык, 日本語のテキスト,
中文文本, 한국어, עברית, العربية, हिन्दी, and emoji such as 🙂, 🚀 and 🦙.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. How vexingly
quick daft zebras jump! She sells sea shells by the sea shore. It was the best of times, it was the
worst of times. All happy families are alike; each unhappy family is unhappy in its own way.
Lily liked to draw pictures of the sun, the moon and the stars. Her mom gave her a big box of
crayons, and Lily drew all day long. "Look, Mom, I drew a dragon!" she said. Her mom smiled. "It is
beautiful, Lily. Where does the dragon live?" Lily thought for a moment. "In a castle on a hill,
with a garden full of flowers and a pond full of frogs." They put the picture on the wall.
`;
