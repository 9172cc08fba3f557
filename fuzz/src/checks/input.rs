//! Structured choices read from a fuzzer's raw bytes: each call takes bytes off the front,
//! and an exhausted input answers zeros, so every byte string is a valid input and a short
//! one means "the first choice everywhere".

pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A number in `0..n` (`n` > 0), from two bytes.
    pub fn below(&mut self, n: usize) -> usize {
        let wide = u16::from_le_bytes([self.byte(), self.byte()]);
        usize::from(wide) % n
    }

    pub fn chance(&mut self, percent: u8) -> bool {
        self.byte() % 100 < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.byte()) % items.len()]
    }

    /// Up to `max` bytes, as many as a length byte pair says.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// How to cut a stream into pieces: up to 8 sizes, used in turn; none means all at once.
    pub fn cut_plan(&mut self) -> Vec<u8> {
        let n = usize::from(self.byte() % 9);
        (0..n).map(|_| self.byte()).collect()
    }
}

/// `data` cut into pieces by a [`Input::cut_plan`]; every byte in one piece, in order.
pub fn pieces<'d>(data: &'d [u8], plan: &[u8]) -> Vec<&'d [u8]> {
    if plan.is_empty() {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    for size in plan.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at((1 + usize::from(*size % 64)).min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}
