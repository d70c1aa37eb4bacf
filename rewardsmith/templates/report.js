document.querySelectorAll("button[data-details]").forEach(function (button) {
  button.addEventListener("click", function () {
    var open = button.getAttribute("data-details") === "open";
    var scope = document.getElementById(button.getAttribute("data-scope")) || document;
    scope.querySelectorAll("details").forEach(function (item) { item.open = open; });
  });
});
