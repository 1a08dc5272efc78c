with model.session() as session:
    with model.trace("The Eiffel Tower is in the city of"):
        a = model.transformer.h[2].output[0][0, -1]
        a = a.save()
    with model.trace("The Colosseum is in the city of"):
        b = model.transformer.h[2].output[0][0, -1].save()
    diff = (a - b).norm()
    print(round(diff.item(), 4))
    with model.trace("I went to the"):
        model.transformer.h[2].output[0][0, -1] += (a - b)
        out = model.lm_head.output[0, -1].argmax().save()
print(out)
