// @ts-check
/** The most calls that arrived within any one second (times in ms). @param {number[]} times */
export function peak(times) {
  const sorted = [...times].sort((a, b) => a - b)
  let most = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i] - sorted[j] >= 1000) j++
    most = Math.max(most, i - j + 1)
  }
  return most
}
