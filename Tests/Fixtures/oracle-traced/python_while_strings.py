i = 0
total = 0
while i < 10:
    total += i
    i += 1
    if total > 20:
        break
print(i, total)
s = "tab\there\nnew line \\ back \'q\' \x41\u00e9\U0001F600 \N{BULLET}"
print(s)
print(r"raw \n stays", "implicit " "concat", len("\u200b"))
print(repr("quote's"), repr('dq"'), "%d items" % 3 if False else "fmt")
with model.trace("Hello world"):
    j = 0
    while j < 3:
        j += 1
    h = model.transformer.h[j].output[0][0, -1, :2].save()
    print("j", j)
