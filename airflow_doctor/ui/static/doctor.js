// Draws the Doctor dashboard's two charts with the vendored Chart.js (static/chart.umd.min.js).
// The data comes from a JSON <script> block the server rendered; nothing is fetched.
(function () {
  var block = document.getElementById("chart-data");
  if (!block || typeof Chart === "undefined") { return; }
  var data = JSON.parse(block.textContent);
  var common = { animation: false, responsive: true, maintainAspectRatio: false,
                 plugins: { legend: { position: "bottom" } } };
  new Chart(document.getElementById("chart-series"), {
    type: "bar",
    data: { labels: data.series.labels, datasets: [
      { label: "healed", data: data.series.healed, backgroundColor: "#2f9e44", stack: "s" },
      { label: "escalated", data: data.series.escalated, backgroundColor: "#e03131", stack: "s" },
      { label: "other (approval, retry failed, in flight)", data: data.series.other, backgroundColor: "#f08c00", stack: "s" }
    ] },
    options: Object.assign({}, common, { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } })
  });
  new Chart(document.getElementById("chart-tth"), {
    type: "bar",
    data: { labels: data.tth.labels, datasets: [
      { label: "heals", data: data.tth.counts, backgroundColor: "#1971c2" }
    ] },
    options: Object.assign({}, common, { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } })
  });
})();
